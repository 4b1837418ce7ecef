"""The checkpoint schema: everything :func:`porting.checkpoint.load_checkpoint` checks before
anything is built from a checkpoint.

Field types, tensor dtypes, graph structure (ops, arity, vars defined before use), per-op
attribute types and ranges, parameter slots and ranks, the architecture spec, the
preprocessing's input size, non-finite parameters, and an estimate of the memory that building
the model and one batch-1 probe forward would take. Every refusal is a
:class:`CheckpointError` naming the file and the field.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import torch

MAX_SIDE = 16384  # largest input height/width a checkpoint may ask for
MAX_WIDTH = 1 << 20  # largest channel count / class count in an architecture spec
DEFAULT_MEMORY_LIMIT = 8 << 30  # bytes: model + one probe forward at batch 1
MEMORY_ENV = "REID_PORTING_MEMORY_LIMIT"


class CheckpointError(ValueError):
    """A file that is not a usable reid-porting checkpoint."""


class _Fail(Exception):
    """Internal: a schema violation at ``field`` (turned into a CheckpointError)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _ints(field: str, v: Any, n: int | tuple[int, ...], low: int, high: int = MAX_SIDE) -> None:
    sizes = (n,) if isinstance(n, int) else n
    if not isinstance(v, (list, tuple)) or len(v) not in sizes or not all(_is_int(x) for x in v):
        want = " or ".join(str(s) for s in sizes)
        raise _Fail(field, f"expected {want} integers, got {_short(v)}")
    for x in v:
        if not low <= x <= high:
            raise _Fail(field, f"values must be in {low}..{high}, got {_short(v)}")


def _int(field: str, v: Any, low: int, high: int = MAX_WIDTH, optional: bool = False) -> None:
    if v is None and optional:
        return
    if not _is_int(v) or not low <= v <= high:
        raise _Fail(field, f"expected an integer in {low}..{high}, got {_short(v)}")


def _num(field: str, v: Any, low: float = -math.inf, high: float = math.inf) -> None:
    if not _is_num(v) or not low <= v <= high:
        rng = "" if math.isinf(low) and math.isinf(high) else f" in [{low}, {high}]"
        raise _Fail(field, f"expected a finite number{rng}, got {_short(v)}")


def _bool(field: str, v: Any, optional: bool = False) -> None:
    if v is None and optional:
        return
    if not isinstance(v, bool):
        raise _Fail(field, f"expected true or false, got {_short(v)}")


def _str(field: str, v: Any, choices: tuple[str, ...] | None = None) -> None:
    if not isinstance(v, str):
        raise _Fail(field, f"expected a string, got {_short(v)}")
    if choices is not None and v not in choices:
        raise _Fail(field, f"must be one of {list(choices)}, got {v!r}")


def _nums(field: str, v: Any, n: int | None = None) -> None:
    if not isinstance(v, (list, tuple)) or (n is not None and len(v) != n) or \
            not all(_is_num(x) for x in v):
        want = f"{n} finite numbers" if n is not None else "a list of finite numbers"
        raise _Fail(field, f"expected {want}, got {_short(v)}")


# op -> (min inputs, max inputs or None, attribute checks)
_AttrCheck = Callable[[str, Any], None]
_ATTRS: dict[str, dict[str, _AttrCheck]] = {
    "conv": {"pad": lambda f, v: _ints(f, v, 4, 0), "stride": lambda f, v: _ints(f, v, 2, 1),
             "dilation": lambda f, v: _ints(f, v, 2, 1),
             "groups": lambda f, v: _int(f, v, 1, optional=True),
             "algorithm": lambda f, v: _str(f, v, ("im2col", "native"))},
    "linear": {"axis": lambda f, v: _int(f, v, 1, 3)},  # after the batch axis, of N x C x H x W
    "caffe_pool": {"method": lambda f, v: _str(f, v, ("max", "ave")),
                   "kernel": lambda f, v: _ints(f, v, 2, 1),
                   "stride": lambda f, v: _ints(f, v, 2, 1),
                   "pad": lambda f, v: _ints(f, v, 2, 0),
                   "global_pooling": _bool, "ceil_mode": _bool},
    "mcn_pool": {"method": lambda f, v: _str(f, v, ("max", "avg")),
                 "pool_size": lambda f, v: _ints(f, v, 2, 1),
                 "stride": lambda f, v: _ints(f, v, 2, 1),
                 "pad": lambda f, v: _ints(f, v, 4, 0)},
    "caffe_lrn": {"local_size": lambda f, v: _int(f, v, 1, 4096),
                  "alpha": _num, "beta": _num, "k": _num,
                  "norm_region": lambda f, v: _str(f, v, ("ACROSS_CHANNELS", "WITHIN_CHANNEL"))},
    "mcn_lrn": {"param": lambda f, v: _nums(f, v, 4)},
    "caffe_bn": {"eps": lambda f, v: _num(f, v, 0.0),
                 "use_global_stats": lambda f, v: _bool(f, v, optional=True),
                 "moving_average_fraction": _num},
    "mcn_bn": {"eps": lambda f, v: _num(f, v, 0.0)},
    "scale": {"axis": lambda f, v: _int(f, v, -4, 3)},
    "bias": {"axis": lambda f, v: _int(f, v, -4, 3)},
    "relu": {"negative_slope": _num},
    "identity": {"n_out": lambda f, v: _int(f, v, 1, 4096)},
    "softmax": {"axis": lambda f, v: _int(f, v, -4, 3)},
    "dropout": {"rate": lambda f, v: _num(f, v, 0.0, 1.0)},
    "eltwise": {"operation": lambda f, v: _str(f, v, ("SUM", "PROD", "MAX")),
                "coeff": lambda f, v: _nums(f, v)},
    "power": {"shift": _num, "scale": _num, "power": _num},
    "concat": {"axis": lambda f, v: _int(f, v, -4, 3)},
    "slice": {"axis": lambda f, v: _int(f, v, -4, 3),
              "slice_points": lambda f, v: _ints(f, v, tuple(range(0, 4097)), 1, 1 << 30),
              "n_out": lambda f, v: _int(f, v, 1, 4096)},
    "flatten": {"axis": lambda f, v: _int(f, v, -4, 3), "end_axis": lambda f, v: _int(f, v, -4, 3)},
    "reshape": {"shape": lambda f, v: _ints(f, v, tuple(range(1, 9)), -1, 1 << 30)},
    "softmax_loss": {"label_offset": lambda f, v: _int(f, v, -(1 << 30), 1 << 30),
                     "reduction": lambda f, v: _str(f, v, ("mean", "sum", "none"))},
    "class_error": {"label_offset": lambda f, v: _int(f, v, -(1 << 30), 1 << 30)},
    "accuracy": {"axis": lambda f, v: _int(f, v, -4, 3), "top_k": lambda f, v: _int(f, v, 1)},
    "topk_error": {"label_offset": lambda f, v: _int(f, v, -(1 << 30), 1 << 30),
                   "topk": lambda f, v: _int(f, v, 1)},
}
_ARITY: dict[str, tuple[int, int | None]] = {
    "scale": (1, 2), "bias": (1, 2), "sum": (1, None), "eltwise": (1, None),
    "concat": (1, None), "square_diff": (2, 2), "softmax_loss": (2, 2), "class_error": (2, 2),
    "accuracy": (2, 3), "topk_error": (2, 2),
}
# op -> slot -> (required, allowed ranks)
_SLOTS: dict[str, dict[str, tuple[bool, tuple[int, ...]]]] = {
    "conv": {"weight": (True, (4,)), "bias": (False, (1,))},
    "linear": {"weight": (True, (2,)), "bias": (False, (1,))},
    "caffe_bn": {"mean": (True, (1,)), "variance": (True, (1,)),
                 "scale_factor": (True, (0, 1))},
    "mcn_bn": {"moments": (True, (2,)), "mult": (True, (1, 2)), "bias": (True, (1, 2))},
    "scale": {"weight": (False, (0, 1, 2, 3, 4)), "bias": (False, (0, 1, 2, 3, 4))},
    "bias": {"bias": (False, (0, 1, 2, 3, 4))},
}


def _check_layer(i: int, layer: Any, known: set[str], sd: Mapping[str, torch.Tensor]) -> None:
    where = f"graph.layers[{i}]"
    if not isinstance(layer, dict):
        raise _Fail(where, f"expected a layer dict, got {type(layer).__name__}")
    for key in ("name", "type", "op"):
        if not isinstance(layer.get(key), str):
            raise _Fail(f"{where}.{key}", f"expected a string, got {_short(layer.get(key))}")
    where = f"graph layer {layer['name']!r} ({layer['type']})"
    for key in ("inputs", "outputs"):
        v = layer.get(key)
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise _Fail(f"{where}.{key}", f"expected a list of var names, got {_short(v)}")
    if not layer["outputs"]:
        raise _Fail(f"{where}.outputs", "a layer needs at least one output")
    for key in ("attrs", "params"):
        if not isinstance(layer.get(key, {}), dict):
            raise _Fail(f"{where}.{key}", f"expected a dict, got {_short(layer.get(key))}")
    op = layer["op"]
    lo, hi = _ARITY.get(op, (1, 1))
    n = len(layer["inputs"])
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"{lo}..{hi if hi is not None else 'n'}"
        raise _Fail(f"{where}.inputs", f"op {op!r} takes {want} input(s), got {n}")
    for v in layer["inputs"]:
        if v not in known:
            raise _Fail(f"{where}.inputs", f"var {v!r} is neither a graph input nor an output "
                                           "of an earlier layer")
    attrs = layer.get("attrs", {})
    for name, value in attrs.items():
        check = _ATTRS.get(op, {}).get(name)
        if check is not None:
            check(f"{where}.attrs.{name}", value)
    if op == "mcn_pool" and "pool_size" not in attrs:
        raise _Fail(f"{where}.attrs.pool_size", "missing")
    if op in ("caffe_pool", "mcn_pool") and "method" not in attrs:
        raise _Fail(f"{where}.attrs.method", "missing")
    if op == "caffe_lrn":
        for name in ("local_size", "alpha", "beta"):
            if name not in attrs:
                raise _Fail(f"{where}.attrs.{name}", "missing")
    if op == "mcn_lrn" and "param" not in attrs:
        raise _Fail(f"{where}.attrs.param", "missing")
    if op == "reshape" and "shape" not in attrs:
        raise _Fail(f"{where}.attrs.shape", "missing")
    if op == "slice" and not attrs.get("slice_points") and "n_out" not in attrs:
        raise _Fail(f"{where}.attrs", "a slice needs slice_points or n_out")
    params = layer.get("params", {})
    slots = _SLOTS.get(op, {})
    for slot, key in params.items():
        if not isinstance(key, str):
            raise _Fail(f"{where}.params.{slot}", f"expected a parameter name, got {_short(key)}")
        full = f"params.{key}"
        if full not in sd:
            raise _Fail(f"{where}.params.{slot}", f"parameter {key!r} is not in the state_dict")
        if slot in slots and sd[full].dim() not in slots[slot][1]:
            ranks = " or ".join(str(r) for r in slots[slot][1])
            raise _Fail(f"{where}.params.{slot}",
                        f"parameter {key!r} has shape {tuple(sd[full].shape)}, a {op!r} "
                        f"{slot} must have {ranks} dimensions")
    for slot, (required, _) in slots.items():
        if required and slot not in params:
            raise _Fail(f"{where}.params.{slot}", "missing")
    if op in ("scale", "bias") and n == 1 and ("weight" if op == "scale" else "bias") \
            not in params:
        raise _Fail(f"{where}.params", f"a one-input {op!r} layer needs its parameter")
    if op == "conv":
        w = sd[f"params.{params['weight']}"]
        if min(w.shape) < 1:
            raise _Fail(f"{where}.params.weight", f"empty filter bank {tuple(w.shape)}")
        b = params.get("bias")
        if b is not None and sd[f"params.{b}"].numel() != w.shape[0]:
            raise _Fail(f"{where}.params.bias", f"{sd[f'params.{b}'].numel()} values for "
                                                f"{w.shape[0]} filters")
    if op == "linear":
        w = sd[f"params.{params['weight']}"]
        b = params.get("bias")
        if b is not None and sd[f"params.{b}"].numel() != w.shape[0]:
            raise _Fail(f"{where}.params.bias", f"{sd[f'params.{b}'].numel()} values for "
                                                f"{w.shape[0]} outputs")
    if op == "mcn_bn":
        m = sd[f"params.{params['moments']}"]
        if m.shape[-1] != 2:
            raise _Fail(f"{where}.params.moments", f"shape {tuple(m.shape)}, expected C x 2")
    known.update(layer["outputs"])


def _check_graph(graph: Any, sd: Mapping[str, torch.Tensor]) -> None:
    if not isinstance(graph, dict):
        raise _Fail("graph", f"expected a dict, got {type(graph).__name__}")
    for key in ("inputs", "layers"):
        if key not in graph:
            raise _Fail(f"graph.{key}", "missing")
    if "framework" in graph:
        _str("graph.framework", graph["framework"])
    inputs = graph["inputs"]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(v, str) for v in inputs):
        raise _Fail("graph.inputs", f"expected a non-empty list of var names, got "
                                    f"{_short(inputs)}")
    layers = graph["layers"]
    if not isinstance(layers, list) or not layers:
        raise _Fail("graph.layers", f"expected a non-empty list of layers, got {_short(layers)}")
    known = set(inputs)
    for i, layer in enumerate(layers):
        _check_layer(i, layer, known, sd)
    outputs = graph.get("outputs") or []
    if not isinstance(outputs, list) or not all(isinstance(v, str) for v in outputs):
        raise _Fail("graph.outputs", f"expected a list of var names, got {_short(outputs)}")
    for v in outputs:
        if v not in known:
            raise _Fail("graph.outputs", f"var {v!r} is not produced by any layer")


_ARCH_KWARGS: dict[str, dict[str, _AttrCheck]] = {
    "siamese": {"feat_dim": lambda f, v: _int(f, v, 1), "num_ids": lambda f, v: _int(f, v, 1),
                "dropout": lambda f, v: _num(f, v, 0.0, 1.0),
                "verification": lambda f, v: _str(f, v, ("softmax", "contrastive")),
                "margin": lambda f, v: _num(f, v, 1e-9, 1e9)},
    "resnet50": {"width": lambda f, v: _int(f, v, 1, 1 << 16),
                 "global_pool": _bool},
    "caffenet": {"widths": lambda f, v: _ints(f, v, 5, 1, 1 << 16),
                 "fc_width": lambda f, v: _int(f, v, 1),
                 "dropout": lambda f, v: _num(f, v, 0.0, 1.0)},
    "vgg16": {"widths": lambda f, v: _ints(f, v, 5, 1, 1 << 16),
              "fc_width": lambda f, v: _int(f, v, 1),
              "dropout": lambda f, v: _num(f, v, 0.0, 1.0)},
}
_BACKBONE_COMMON: dict[str, _AttrCheck] = {
    "semantics": lambda f, v: _str(f, v, ("caffe", "matconvnet")),
    "num_classes": lambda f, v: _int(f, v, 1, optional=True),
}


def _check_arch(arch: Any, field: str = "arch", depth: int = 0) -> None:
    if not isinstance(arch, dict):
        raise _Fail(field, f"expected a model spec dict, got {type(arch).__name__}")
    name = arch.get("name")
    if not isinstance(name, str) or name not in _ARCH_KWARGS:
        raise _Fail(f"{field}.name", f"unknown architecture {_short(name)}; known: "
                                     f"{sorted(_ARCH_KWARGS)}")
    kwargs = arch.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise _Fail(f"{field}.kwargs", f"expected a dict, got {_short(kwargs)}")
    checks = dict(_ARCH_KWARGS[name], **({} if name == "siamese" else _BACKBONE_COMMON))
    for key, value in kwargs.items():
        if key not in checks:
            raise _Fail(f"{field}.kwargs.{key}", f"not an argument of {name!r}; known: "
                                                 f"{sorted(checks)}")
        checks[key](f"{field}.kwargs.{key}", value)
    if name == "siamese":
        if depth > 0:
            raise _Fail(f"{field}.name", "a siamese trunk cannot itself be siamese")
        if "feat_dim" not in kwargs:
            raise _Fail(f"{field}.kwargs.feat_dim", "missing")
        _check_arch(arch.get("trunk"), f"{field}.trunk", depth + 1)


def _check_preprocess(pre: Any) -> tuple[int, int] | None:
    """Light checks of the fields that size allocations; the full check is Preprocess's."""
    if pre is None:
        return None
    if not isinstance(pre, dict):
        raise _Fail("preprocess", f"expected a dict, got {type(pre).__name__}")
    size = None
    for key in ("input_size", "resize"):
        v = pre.get(key)
        if v is None and key == "resize":
            continue
        if v is None:
            continue
        if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(_is_int(x) for x in v) \
                or not all(x > 0 for x in v):
            raise _Fail(f"preprocess.{key}", f"expected two positive integers (height, width), "
                                             f"got {_short(v)}")
        if max(v) > MAX_SIDE:
            raise _Fail(f"preprocess.{key}", f"{list(v)} exceeds the limit of {MAX_SIDE} "
                                             "pixels a side")
        if key == "input_size":
            size = (int(v[0]), int(v[1]))
    mean = pre.get("mean")
    if mean is not None:
        try:
            arr = torch.as_tensor(mean, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise _Fail("preprocess.mean", "expected 3 numbers or an HxWx3 array") from None
        if arr.dim() not in (1, 3) or arr.shape[-1] != 3:
            raise _Fail("preprocess.mean", f"expected 3 numbers or an HxWx3 array, got shape "
                                           f"{tuple(arr.shape)}")
        if not torch.isfinite(arr).all():
            raise _Fail("preprocess.mean", "contains non-finite values")
    return size


def _check_tensors(sd: Any, allow_nonfinite: bool) -> None:
    if not isinstance(sd, dict):
        raise _Fail("state_dict", f"expected a dict of tensors, got {type(sd).__name__}")
    for key, t in sd.items():
        if not isinstance(key, str):
            raise _Fail("state_dict", f"key {_short(key)} is not a string")
        field = f"state_dict[{key!r}]"
        if not isinstance(t, torch.Tensor):
            raise _Fail(field, f"expected a tensor, got {type(t).__name__}")
        if key.endswith("num_batches_tracked"):
            continue  # torch BatchNorm's integer counter
        if t.layout != torch.strided or t.is_quantized:
            raise _Fail(field, f"a {t.layout} tensor; parameters must be dense")
        if not t.is_floating_point():
            raise _Fail(field, f"dtype {t.dtype}, but a parameter must be floating point")
        if not allow_nonfinite and t.numel():
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise _Fail(field, f"{bad} non-finite value(s) (NaN/Inf) in "
                                   f"{tuple(t.shape)}; pass allow_nonfinite=True to load it "
                                   "anyway")


def _check_arch_map(arch_map: Any, sd: Mapping[str, torch.Tensor]) -> None:
    if not isinstance(arch_map, dict):
        raise _Fail("arch_map", f"expected a dict, got {type(arch_map).__name__}")
    for k, v in arch_map.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise _Fail("arch_map", f"entry {_short(k)}: {_short(v)} is not name -> name")
        if v not in sd:
            raise _Fail(f"arch_map[{k!r}]", f"{v!r} is not in the state_dict")


def resolve_memory_limit(limit: int | None = None) -> int:
    """The memory bound in bytes: ``limit``, else ``$REID_PORTING_MEMORY_LIMIT`` (bytes, or
    with a K/M/G/T suffix), else 8 GiB."""
    if limit is not None:
        return int(limit)
    text = os.environ.get(MEMORY_ENV, "").strip().upper().removesuffix("B")
    if not text:
        return DEFAULT_MEMORY_LIMIT
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1)
    try:
        return int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        raise CheckpointError(f"${MEMORY_ENV}: expected bytes such as 16G, got "
                              f"{os.environ[MEMORY_ENV]!r}") from None


def _conv_out(n: int, k: int, s: int, lo: int, hi: int, d: int = 1, ceil: bool = False) -> int:
    span = n + lo + hi - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    return max(1, out)


def _infer(layer: dict[str, Any], shapes: list[tuple[int, ...]],
           sd: Mapping[str, torch.Tensor]) -> list[tuple[int, ...]] | None:
    """Output shapes (without batch) of one graph layer from its inputs' shapes, by the op's
    arithmetic; ``None`` where unknown. Only for the memory estimate."""
    op, a = layer["op"], layer.get("attrs", {})
    x = shapes[0]
    p = {slot: sd.get(f"params.{key}") for slot, key in layer.get("params", {}).items()}
    c, h, w = (x + (1, 1))[:3] if len(x) < 3 else x[:3]
    if op == "conv" and p.get("weight") is not None and p["weight"].dim() == 4:
        o, _, kh, kw = p["weight"].shape
        t, b, left, r = a.get("pad", (0, 0, 0, 0))
        sh, sw = a.get("stride", (1, 1))
        dh, dw = a.get("dilation", (1, 1))
        return [(int(o), _conv_out(h, kh, sh, t, b, dh), _conv_out(w, kw, sw, left, r, dw))]
    if op == "caffe_pool":
        if a.get("global_pooling"):
            return [(c, 1, 1)]
        (kh, kw), (sh, sw) = a.get("kernel", (1, 1)), a.get("stride", (1, 1))
        ph, pw = a.get("pad", (0, 0))
        ceil = a.get("ceil_mode", True)
        return [(c, _conv_out(h, kh, sh, ph, ph, ceil=ceil), _conv_out(w, kw, sw, pw, pw,
                                                                        ceil=ceil))]
    if op == "mcn_pool":
        (kh, kw), (sh, sw) = a["pool_size"], a.get("stride", (1, 1))
        t, b, left, r = a.get("pad", (0, 0, 0, 0))
        return [(c, _conv_out(h, kh, sh, t, b), _conv_out(w, kw, sw, left, r))]
    if op == "linear" and p.get("weight") is not None:
        return [(int(p["weight"].shape[0]),)]
    if op == "concat":
        return [(sum(s[0] for s in shapes),) + tuple(x[1:])]
    if op in ("softmax_loss", "class_error", "accuracy", "topk_error"):
        return [()] * len(layer["outputs"])
    return [x] * len(layer["outputs"])


def _graph_activation_bytes(graph: dict[str, Any], sd: Mapping[str, torch.Tensor],
                            size: tuple[int, int]) -> int:
    """Peak bytes of live float32 vars in one batch-1 forward at ``size``: shapes propagated
    through each op's arithmetic (nothing is allocated or run)."""
    h, w = size
    env: dict[str, tuple[int, ...]] = {graph["inputs"][0]: (3, h, w)}
    for name in graph["inputs"][1:]:  # a second stream's image input: same size
        if name.startswith(("data", "input")):
            env[name] = (3, h, w)
    layers = graph["layers"]
    last: dict[str, int] = {}
    for i, layer in enumerate(layers):
        for v in layer["inputs"]:
            last[v] = i

    def nbytes(shape: tuple[int, ...]) -> int:
        return 4 * math.prod(shape)

    peak = live = sum(nbytes(s) for s in env.values())
    for i, layer in enumerate(layers):
        if not layer["inputs"] or not all(v in env for v in layer["inputs"]):
            continue
        try:
            outs = _infer(layer, [env[v] for v in layer["inputs"]], sd)
        except (TypeError, ValueError, KeyError, IndexError):
            outs = None
        for name, shape in zip(layer["outputs"], outs or [], strict=False):
            if name not in env:
                env[name] = shape
                live += nbytes(shape)
        peak = max(peak, live)
        for v in layer["inputs"]:
            if last.get(v) == i and v in env:
                live -= nbytes(env.pop(v))
    return peak


def _arch_bytes(arch: dict[str, Any], size: tuple[int, int] | None) -> tuple[int, int]:
    """(parameter bytes, activation bytes of a batch-1 forward) of the canonical model: the
    parameters counted on the meta device, the activations from the widest full-resolution
    map (channels / stride^2 of the first layers) times 3 live maps."""
    from porting.models import build_model

    with torch.device("meta"):
        model = build_model(arch)
    n_param = sum(t.numel() * 4 for t in model.state_dict().values())
    if size is None:
        return n_param, 0
    trunk = arch.get("trunk", {}) if arch.get("name") == "siamese" else arch
    kwargs = trunk.get("kwargs", {})
    name = trunk.get("name")
    if name == "resnet50":
        per_pixel = max(3.0, kwargs.get("width", 64) / 4)  # stride 2 conv1, then stride 4 x4
    elif name == "vgg16":
        per_pixel = max(3.0, float((kwargs.get("widths") or (64,))[0]))
    else:  # caffenet: 11x11 stride 4
        per_pixel = max(3.0, (kwargs.get("widths") or (96,))[0] / 16)
    streams = 2 if arch.get("name") == "siamese" else 1
    return n_param, int(3 * 4 * per_pixel * size[0] * size[1] * streams)


def estimate_memory(ckpt: dict[str, Any]) -> int:
    """Bytes that building the checkpoint's model and one batch-1 forward at its input size
    would take (the state_dict it already holds counts once)."""
    sd = ckpt["state_dict"]
    total = sum(t.numel() * t.element_size() for t in sd.values())
    pre = ckpt.get("preprocess") or {}
    size = tuple(pre["input_size"]) if pre.get("input_size") else None
    if ckpt.get("arch") is not None:
        params, acts = _arch_bytes(ckpt["arch"], size)
        total += params + (acts if ckpt.get("graph") is None else 0)
    if ckpt.get("graph") is not None and size is not None:
        total += _graph_activation_bytes(ckpt["graph"], sd, size)
    return total


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def check_schema(ckpt: dict[str, Any], path: str | os.PathLike = "checkpoint", *,
                 allow_nonfinite: bool = False, memory_limit: int | None = None) -> None:
    """Check every field a model is built from; raise :class:`CheckpointError` naming
    ``path`` and the field. Nothing is allocated beyond meta-device shapes."""
    limit = resolve_memory_limit(memory_limit)
    try:
        version = ckpt.get("version")
        if not _is_int(version) or version < 1:
            raise _Fail("version", f"expected a positive integer, got {_short(version)}")
        if "state_dict" not in ckpt:
            raise _Fail("state_dict", "missing (the checkpoint has no 'state_dict')")
        sd = ckpt["state_dict"]
        _check_tensors(sd, allow_nonfinite)
        arch, graph = ckpt.get("arch"), ckpt.get("graph")
        if arch is None and graph is None:
            raise _Fail("arch", "a checkpoint needs an 'arch' spec or a 'graph'")
        if arch is not None:
            _check_arch(arch)
        if graph is not None:
            _check_graph(graph, sd)
        if "arch_map" in ckpt:
            _check_arch_map(ckpt["arch_map"], sd)
        _check_preprocess(ckpt.get("preprocess"))
        if ckpt.get("recipe") is not None and not isinstance(ckpt["recipe"], str):
            raise _Fail("recipe", f"expected a string, got {_short(ckpt['recipe'])}")
        for key in ("source", "converter", "meta"):
            if ckpt.get(key) is not None and not isinstance(ckpt[key], dict):
                raise _Fail(key, f"expected a dict, got {type(ckpt[key]).__name__}")
        try:
            need = estimate_memory(ckpt)
        except _Fail:
            raise
        except Exception as exc:  # noqa: BLE001 - the meta build refused the spec
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise _Fail("arch", f"cannot build the model ({msg})") from None
        if need > limit:
            raise _Fail("preprocess.input_size" if ckpt.get("preprocess") else "arch",
                        f"building the model and one forward pass would need about "
                        f"{_gib(need)}, over the limit of {_gib(limit)} (raise it with "
                        f"${MEMORY_ENV} or memory_limit=)")
    except _Fail as exc:
        raise CheckpointError(f"{path}: {exc}") from None
