"""``--arch auto`` for Caffe nets: recognise CaffeNet, VGG16 and Kaiming He's ResNet-50 by
their layer names and copy the converted weights into the canonical porting.models class."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from porting.models import build_model

from .caffe_reader import CaffeNet
from .common import GraphBuilder


def _names(net: CaffeNet) -> set[str]:
    return {layer.name for layer in net.layers}


def _spec(b: GraphBuilder, net: CaffeNet) -> dict[str, Any] | None:
    names = _names(net)
    by = {layer["name"]: layer for layer in b.layers}

    def out_ch(name: str) -> int:
        return int(b.params[by[name]["params"]["weight"]].shape[0])

    if {"conv1", "bn_conv1", "scale_conv1", "res5c_branch2c", "pool5"} <= names:
        pool5 = by["pool5"]["attrs"]
        kwargs: dict[str, Any] = {"semantics": "caffe", "width": out_ch("conv1"),
                                  "global_pool": bool(pool5.get("global_pooling")),
                                  "num_classes": out_ch("fc1000") if "fc1000" in by else None}
        return {"name": "resnet50", "kwargs": kwargs}
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


def _caffe_names(model: nn.Module) -> dict[str, str]:
    if hasattr(model, "caffe_layer_names"):
        return model.caffe_layer_names()
    return {n: n for n, _ in model.named_modules() if n}


def map_to_canonical(b: GraphBuilder, net: CaffeNet):
    """(arch spec, state_dict, description) when the net is a known architecture and the
    canonical model reproduces the graph's output on a random input; else None."""
    spec = _spec(b, net)
    if spec is None:
        return None
    try:
        model = build_model(spec).eval()
    except (ValueError, TypeError) as exc:
        b.notes.append(f"--arch auto: looks like {spec['name']} but cannot build it ({exc})")
        return None
    by = {layer["name"]: layer for layer in b.layers}
    modules = dict(model.named_modules())
    assigned: set[str] = set()
    with torch.no_grad():
        for path, cname in _caffe_names(model).items():
            if cname not in by:
                continue
            for slot, key in by[cname]["params"].items():
                target = getattr(modules[path], slot, None)
                src = b.params[key]
                if target is None or target.numel() != src.numel():
                    b.notes.append(f"--arch auto: {cname}.{slot} does not fit {spec['name']}")
                    return None
                target.copy_(src.reshape(target.shape))
                assigned.add(f"{path}.{slot}")
    state = model.state_dict()
    if set(state) - assigned:
        b.notes.append(f"--arch auto: {spec['name']} has tensors the net does not provide: "
                       f"{sorted(set(state) - assigned)[:4]}")
        return None
    if not _agrees(b, net, model):
        b.notes.append(f"--arch auto: the canonical {spec['name']} disagrees with the graph; "
                       "kept the graph only")
        return None
    desc = f"porting.models {spec['name']} (caffe semantics), checked on a random input"
    return spec, state, desc


def _agrees(b: GraphBuilder, net: CaffeNet, model: nn.Module) -> bool:
    data = next(iter(b.inputs), None)
    shape = net.inputs.get(data) if data else None
    if not shape or len(shape) != 4:
        return False
    last = "fc8" if "fc8" in _names(net) else "fc1000" if "fc1000" in _names(net) else None
    graph = b.module().eval()
    x = torch.randn((1,) + tuple(shape[1:]), generator=torch.Generator().manual_seed(0)) * 50
    ref_var = None
    for layer in b.layers:
        if layer["name"] == (last or ("fc7" if "fc7" in _names(net) else "pool5")):
            ref_var = layer["outputs"][0]
    if ref_var is None:
        return False
    with torch.no_grad():
        ref = graph(**{data: x}, outputs=[ref_var])[ref_var]
        ours = model(x)
    ref = ref.reshape(ours.shape) if ref.numel() == ours.numel() else None
    if ref is None:
        return False
    return bool((ours - ref).abs().max() <= 1e-4 * ref.abs().max().clamp_min(1e-12))
