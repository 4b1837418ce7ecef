"""``--arch auto`` for MatConvNet models: the paper's two-stream ResNet-50, the ImageNet
ResNet-50 (DagNN), CaffeNet and VGG16 (SimpleNN), recognised by layer names."""

from __future__ import annotations

from typing import Any

import torch

from ..arch import assign, close, source_names
from ..common import GraphBuilder


def _by(b: GraphBuilder) -> dict[str, dict[str, Any]]:
    return {layer["name"]: layer for layer in b.layers}


class _NoMatch(Exception):
    """A layer has a known architecture's name but not its kind (retyped, custom)."""


def _out(b: GraphBuilder, name: str) -> int:
    key = _by(b).get(name, {}).get("params", {}).get("weight")
    if key is None:
        raise _NoMatch(name)
    return int(b.params[key].shape[0])


def _resnet_kwargs(b: GraphBuilder, classes: str | None) -> dict[str, Any]:
    return {"semantics": "matconvnet", "width": _out(b, "conv1"),
            "num_classes": _out(b, classes) if classes else None}


def _spec(b: GraphBuilder) -> dict[str, Any] | None:
    try:
        return _match(b)
    except _NoMatch:
        return None


def _match(b: GraphBuilder) -> dict[str, Any] | None:
    by = _by(b)
    names = set(by)
    if {"conv1", "bn_conv1", "res5c_branch2c", "pool5", "fc9", "Square"} <= names:
        ident = next((n for n, layer in by.items() if layer["op"] == "conv"
                      and layer["inputs"] and by.get("dropout", {}).get("outputs", [None])[0]
                      == layer["inputs"][0]), None)
        if ident is None:
            return None
        trunk = {"name": "resnet50", "kwargs": _resnet_kwargs(b, None)}
        return {"name": "siamese", "trunk": trunk, "kwargs": {
            "feat_dim": 4 * 8 * _out(b, "conv1"), "num_ids": _out(b, ident),
            "dropout": float(by["dropout"]["attrs"].get("rate", 0.9))}, "_ident": ident}
    if {"conv1", "bn_conv1", "res5c_branch2c", "pool5"} <= names:
        return {"name": "resnet50",
                "kwargs": _resnet_kwargs(b, "fc1000" if "fc1000" in names else None)}
    convs = [f"conv{i}" for i in range(1, 6)]
    if set(convs) | {"norm1", "norm2", "fc6", "fc7"} <= names:
        return {"name": "caffenet", "kwargs": {
            "semantics": "matconvnet", "widths": [_out(b, c) for c in convs],
            "fc_width": _out(b, "fc7"), "num_classes": _out(b, "fc8") if "fc8" in names
            else None}}
    vgg = [f"conv{s}_1" for s in range(1, 6)]
    if set(vgg) | {"conv5_3", "fc6", "fc7"} <= names:
        return {"name": "vgg16", "kwargs": {
            "semantics": "matconvnet", "widths": [_out(b, c) for c in vgg],
            "fc_width": _out(b, "fc7"), "num_classes": _out(b, "fc8") if "fc8" in names
            else None}}
    return None


def map_to_canonical(b: GraphBuilder, preprocess: dict[str, Any]):
    spec = _spec(b)
    if spec is None:
        return None
    size = (224, 224) if spec["name"] == "siamese" else tuple(preprocess["input_size"])
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randn((1, 3) + size, generator=gen) * 50
    data = b.inputs[0]

    if spec["name"] == "siamese":
        ident = spec.pop("_ident")

        def names(model):
            out = source_names(model.trunk, "trunk.")
            out.update({"fc751": ident, "fc9": "fc9"})
            return out

        by = _by(b)
        pred, dist = by[ident]["outputs"][0], by["fc9"]["outputs"][0]

        feat, feat2 = by["Square"]["inputs"]

        def check(model, graph) -> bool:
            # Stream 2 uses the very same parameter tensors, so one stream through the trunk
            # and the verification head on given features check the whole mapping.
            f1 = model.features(x1)
            ref = graph(**{data: x1}, outputs=[feat, pred])
            f2 = torch.randn(f1.shape, generator=gen)
            head = graph(**{feat: f1, feat2: f2}, outputs=[dist])[dist]
            return (close(f1, ref[feat]) and close(model.fc751(f1), ref[pred])
                    and close(model.fc9(model.square(f1, f2)), head))
    else:
        last = {"resnet50": "fc1000", "caffenet": "fc8", "vgg16": "fc8"}[spec["name"]]
        if spec["kwargs"]["num_classes"] is None:
            last = "pool5" if spec["name"] == "resnet50" else "fc7"
        out = _by(b)[last]["outputs"][0]
        if spec["name"] != "resnet50" and last == "fc7":
            out = _by(b)["relu7"]["outputs"][0] if "relu7" in _by(b) else out
        names = source_names

        def check(model, graph) -> bool:
            return close(model(x1), graph(**{data: x1}, outputs=[out])[out])

    return assign(b, spec, names, check)
