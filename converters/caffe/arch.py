"""``--arch auto`` for Caffe nets: CaffeNet, VGG16 and Kaiming He's ResNet-50, recognised
by their layer names."""

from __future__ import annotations

from typing import Any

import torch

from ..arch import assign, close, source_names
from ..common import GraphBuilder
from .reader import CaffeNet


class _NoMatch(Exception):
    """A layer has a known architecture's name but not its kind (retyped, custom)."""


def _spec(b: GraphBuilder, net: CaffeNet) -> dict[str, Any] | None:
    try:
        return _match(b, net)
    except _NoMatch:
        return None


def _match(b: GraphBuilder, net: CaffeNet) -> dict[str, Any] | None:
    names = {layer.name for layer in net.layers}
    by = {layer["name"]: layer for layer in b.layers}

    def out_ch(name: str) -> int:
        key = by.get(name, {}).get("params", {}).get("weight")
        if key is None:
            raise _NoMatch(name)
        return int(b.params[key].shape[0])

    if {"conv1", "bn_conv1", "scale_conv1", "res5c_branch2c", "pool5"} <= names:
        return {"name": "resnet50", "kwargs": {
            "semantics": "caffe", "width": out_ch("conv1"),
            "global_pool": bool(by["pool5"]["attrs"].get("global_pooling")),
            "num_classes": out_ch("fc1000") if "fc1000" in by else None}}
    convs = [f"conv{i}" for i in range(1, 6)]
    if set(convs) | {"norm1", "norm2", "fc6", "fc7"} <= names:
        return {"name": "caffenet", "kwargs": {
            "semantics": "caffe", "widths": [out_ch(c) for c in convs],
            "fc_width": out_ch("fc7"), "num_classes": out_ch("fc8") if "fc8" in by else None}}
    vgg = [f"conv{s}_1" for s in range(1, 6)]
    if set(vgg) | {"conv5_3", "fc6", "fc7"} <= names:
        return {"name": "vgg16", "kwargs": {
            "semantics": "caffe", "widths": [out_ch(c) for c in vgg],
            "fc_width": out_ch("fc7"), "num_classes": out_ch("fc8") if "fc8" in by else None}}
    return None


def map_to_canonical(b: GraphBuilder, net: CaffeNet):
    spec = _spec(b, net)
    data = b.inputs[0] if b.inputs else None
    shape = net.inputs.get(data) if data else None
    if spec is None or not shape or len(shape) != 4:
        return None
    last = "fc8" if spec["name"] != "resnet50" else "fc1000"
    if spec["kwargs"]["num_classes"] is None:
        last = "pool5" if spec["name"] == "resnet50" else "fc7"
    out = last  # the blob's final value (after any in-place ReLU/Dropout)

    def check(model, graph) -> bool:
        x = torch.randn((1,) + tuple(shape[1:]), generator=torch.Generator().manual_seed(0))
        return close(model(x * 50), graph(**{data: x * 50}, outputs=[out])[out])

    return assign(b, spec, source_names, check)
