"""``--arch auto`` for both converters: copy a converted graph's parameters into the
canonical :mod:`porting.models` class and keep the mapping only if it computes the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from porting.models import build_model

from .common import GraphBuilder


def source_names(model: nn.Module, prefix: str = "") -> dict[str, str]:
    """Module path -> source layer name (Caffe and MatConvNet share the layer names)."""
    if hasattr(model, "caffe_layer_names"):
        names = model.caffe_layer_names()
    else:
        names = {n: n for n, _ in model.named_modules() if n}
    return {prefix + path: name for path, name in names.items()}


def assign(b: GraphBuilder, spec: dict[str, Any], names: Callable[[nn.Module], dict[str, str]],
           check: Callable[[nn.Module, nn.Module], bool]):
    """Build ``spec``, fill it from the graph's parameters by layer name, verify with
    ``check(model, graph)``; returns ``(spec, arch_map, description)`` or ``None``, where
    ``arch_map`` maps each canonical state_dict key to the graph parameter holding it."""
    try:
        # Every tensor comes from the graph: build without allocating or initialising any,
        # then hand the module the graph's tensors themselves (no copy).
        with torch.device("meta"):
            model = build_model(spec).eval()
    except (ValueError, TypeError) as exc:
        b.notes.append(f"--arch auto: looks like {spec['name']} but cannot build it ({exc})")
        return None
    by = {layer["name"]: layer for layer in b.layers}
    modules = dict(model.named_modules())
    assigned: dict[str, str] = {}
    tensors: dict[str, torch.Tensor] = {}
    for path, lname in names(model).items():
        if lname not in by:
            continue
        for slot, key in by[lname]["params"].items():
            target = getattr(modules[path], slot, None)
            src = b.params[key]
            if not isinstance(target, torch.Tensor) or target.numel() != src.numel():
                b.notes.append(f"--arch auto: {lname}.{slot} does not fit {spec['name']}")
                return None
            tensors[f"{path}.{slot}"] = src.reshape(target.shape)
            assigned[f"{path}.{slot}"] = key
    left = sorted(set(model.state_dict()) - set(assigned))
    if left:
        b.notes.append(f"--arch auto: {spec['name']} has tensors the file does not provide: "
                       f"{left[:4]}")
        return None
    model.load_state_dict(tensors, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        b.notes.append(f"--arch auto: {spec['name']} has tensors outside its state_dict")
        return None
    from porting.graph import GraphError

    graph = b.module(fast=True).eval()
    try:
        with torch.no_grad():
            ok = check(model, graph)
    except (GraphError, RuntimeError) as exc:
        b.notes.append(f"--arch auto: could not run the check ({str(exc).splitlines()[0]})")
        return None
    if not ok:
        b.notes.append(f"--arch auto: the canonical {spec['name']} disagrees with the graph; "
                       "kept the graph only")
        return None
    sem = spec.get("kwargs", {}).get("semantics") or spec.get("trunk", {}).get(
        "kwargs", {}).get("semantics")
    return spec, assigned, f"porting.models {spec['name']} ({sem} semantics), verified on a " \
                        "random input"


def close(ours: torch.Tensor, ref: torch.Tensor, rtol: float = 1e-4) -> bool:
    if ours.numel() != ref.numel():
        return False
    ref = ref.reshape(ours.shape)
    return bool((ours - ref).abs().max() <= rtol * ref.abs().max().clamp_min(1e-12))
