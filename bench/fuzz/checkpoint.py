"""Checkpoint mutators: dict edits of a converted graph checkpoint or a canonical one, and
pickle payloads."""

from __future__ import annotations

import random
from typing import Any

from .common import Payload

# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------

def _weird_value(rng: random.Random, marker: str) -> tuple[Any, str]:
    import torch

    options: list[tuple[Any, str]] = [
        (None, "None"), ({}, "{}"), ([], "[]"), ("x", "str"), (-1, "-1"), (0, "0"),
        (10 ** 12, "huge int"), (float("nan"), "nan"), (float("inf"), "inf"), (True, "True"),
        ([1, 2, 3], "list3"), ({"p": 0.5}, "dict"), ([30000, 30000], "[30000, 30000]"),
        (torch.ones(3, dtype=torch.int64), "int tensor"), (torch.ones(2, dtype=torch.bool),
                                                            "bool tensor"),
        (torch.tensor(float("nan")), "nan tensor"), (torch.ones(()), "0-d tensor"),
        (Payload(marker), "PAYLOAD"), ([[[[1]]]], "nested list"), ("224x224", "size string"),
    ]
    return rng.choice(options)


def _paths(obj: Any, prefix: tuple = (), depth: int = 0) -> list[tuple]:
    """Every (container, key) path in a checkpoint dict, for random edits."""
    out = []
    if depth > 6:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(prefix + (k,))
            if k != "state_dict":
                out += _paths(v, prefix + (k,), depth + 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:50]):
            out.append(prefix + (i,))
            out += _paths(v, prefix + (i,), depth + 1)
    return out


def _get(obj: Any, path: tuple) -> Any:
    for k in path:
        obj = obj[k]
    return obj


def checkpoint_edit(rng: random.Random, ck: dict[str, Any], marker: str) -> str:
    import torch

    action = rng.randrange(10)
    sd = ck.get("state_dict")
    if action <= 2 and isinstance(sd, dict) and sd:
        key = rng.choice(sorted(sd))
        t = sd[key]
        how = rng.randrange(8)
        if how == 0:
            sd[key] = t.to(rng.choice([torch.int64, torch.bool, torch.int8, torch.complex64,
                                       torch.float16, torch.float64, torch.uint8]))
        elif how == 1:
            sd[key] = t.reshape(-1)
        elif how == 2 and t.numel():
            t = t.clone()
            t.view(-1)[rng.randrange(t.numel())] = rng.choice([float("nan"), float("inf")])
            sd[key] = t
        elif how == 3:
            del sd[key]
        elif how == 4:
            sd[key] = _weird_value(rng, marker)[0]
        elif how == 5:
            sd[key] = t[..., :1].clone() if t.dim() else t
        elif how == 6:
            sd[key] = t.reshape(t.shape + (1,)) if t.dim() < 6 else t
        else:
            sd[key] = torch.zeros(0)
        return f"state_dict[{key!r}] edit {how}"
    graph = ck.get("graph")
    if action <= 5 and isinstance(graph, dict) and graph.get("layers"):
        layers = graph["layers"]
        i = rng.randrange(len(layers))
        layer = layers[i]
        how = rng.randrange(7)
        if how == 0 and layer.get("attrs"):
            name = rng.choice(sorted(layer["attrs"]))
            value, what = _weird_value(rng, marker)
            layer["attrs"][name] = value
            return f"layer {i} attrs.{name} -> {what}"
        if how == 1:
            from porting.graph import OPS

            layer["op"] = rng.choice(sorted(OPS))
            return f"layer {i} op -> {layer['op']}"
        if how == 2:
            layer["inputs"] = rng.choice([[], layer["inputs"] * 2, ["ghost"],
                                          layer["inputs"][:1] + ["label"]])
            return f"layer {i} inputs {layer['inputs']}"
        if how == 3:
            key = rng.choice(["name", "type", "op", "inputs", "outputs", "attrs", "params"])
            layer.pop(key, None)
            return f"layer {i} {key} deleted"
        if how == 4:
            j = rng.randrange(len(layers))
            layers[i], layers[j] = layers[j], layers[i]
            return f"layers {i} <-> {j}"
        if how == 5 and layer.get("params"):
            slot = rng.choice(sorted(layer["params"]))
            other = rng.choice(sorted(ck["state_dict"])).removeprefix("params.") \
                if isinstance(ck.get("state_dict"), dict) and ck["state_dict"] else "x"
            layer["params"][slot] = other
            return f"layer {i} params.{slot} -> {other}"
        del layers[i]
        return f"layer {i} deleted"
    if action == 6:
        pre = ck.get("preprocess")
        if isinstance(pre, dict):
            key = rng.choice(["input_size", "resize", "mean", "colour", "crop"])
            value, what = rng.choice([([30000, 30000], "[30000, 30000]"), ("224", "str"),
                                      ([0, 5], "zero"), ([9000, 9000], "[9000, 9000]"),
                                      ([float("nan")] * 3, "nan"), _weird_value(rng, marker)])
            pre[key] = value
            return f"preprocess.{key} -> {what}"
    paths = [p for p in _paths(ck) if p[:1] != ("state_dict",)]
    path = rng.choice(paths)
    parent = _get(ck, path[:-1])
    if rng.random() < 0.2 and isinstance(parent, dict):
        del parent[path[-1]]
        return f"{'.'.join(map(str, path))} deleted"
    value, what = _weird_value(rng, marker)
    parent[path[-1]] = value
    return f"{'.'.join(map(str, path))} -> {what}"
