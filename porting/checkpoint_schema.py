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
from collections.abc import Mapping
from typing import Any

import torch

from porting.ops import OPS
from porting.ops.checks import (
    MAX_SIDE,
    MAX_WIDTH,
    FieldError,
    boolean,
    choice,
    integer,
    ints,
    is_int,
    number,
    short,
)
from porting.ops.registry import AttrCheck

DEFAULT_MEMORY_LIMIT = 8 << 30  # bytes: model + one probe forward at batch 1
MEMORY_ENV = "REID_PORTING_MEMORY_LIMIT"

__all__ = ["MAX_SIDE", "MAX_WIDTH", "CheckpointError", "check_schema", "estimate_memory",
           "resolve_memory_limit"]


class CheckpointError(ValueError):
    """A file that is not a usable reid-porting checkpoint."""


def _check_layer(i: int, layer: Any, known: set[str], sd: Mapping[str, torch.Tensor]) -> None:
    where = f"graph.layers[{i}]"
    if not isinstance(layer, dict):
        raise FieldError(where, f"expected a layer dict, got {type(layer).__name__}")
    for key in ("name", "type", "op"):
        if not isinstance(layer.get(key), str):
            raise FieldError(f"{where}.{key}", f"expected a string, got {short(layer.get(key))}")
    where = f"graph layer {layer['name']!r} ({layer['type']})"
    for key in ("inputs", "outputs"):
        v = layer.get(key)
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise FieldError(f"{where}.{key}", f"expected a list of var names, got {short(v)}")
    if not layer["outputs"]:
        raise FieldError(f"{where}.outputs", "a layer needs at least one output")
    for key in ("attrs", "params"):
        if not isinstance(layer.get(key, {}), dict):
            raise FieldError(f"{where}.{key}", f"expected a dict, got {short(layer.get(key))}")
    op = layer["op"]
    spec = OPS.get(op)  # an unknown op is refused when the graph is built, naming the layer
    lo, hi = spec.arity if spec else (1, 1)
    n = len(layer["inputs"])
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"{lo}..{hi if hi is not None else 'n'}"
        raise FieldError(f"{where}.inputs", f"op {op!r} takes {want} input(s), got {n}")
    for v in layer["inputs"]:
        if v not in known:
            raise FieldError(f"{where}.inputs", f"var {v!r} is neither a graph input nor an "
                                                "output of an earlier layer")
    attrs = layer.get("attrs", {})
    params = layer.get("params", {})
    if spec is None:
        known.update(layer["outputs"])
        return
    for name, value in attrs.items():
        check = spec.attrs.get(name)
        if check is not None:
            check(f"{where}.attrs.{name}", value)
    for name in spec.required:
        if name not in attrs:
            raise FieldError(f"{where}.attrs.{name}", "missing")
    for slot, key in params.items():
        if not isinstance(key, str):
            raise FieldError(f"{where}.params.{slot}",
                             f"expected a parameter name, got {short(key)}")
        full = f"params.{key}"
        if full not in sd:
            raise FieldError(f"{where}.params.{slot}",
                             f"parameter {key!r} is not in the state_dict")
        if slot in spec.slots and sd[full].dim() not in spec.slots[slot][1]:
            ranks = " or ".join(str(r) for r in spec.slots[slot][1])
            raise FieldError(f"{where}.params.{slot}",
                             f"parameter {key!r} has shape {tuple(sd[full].shape)}, a {op!r} "
                             f"{slot} must have {ranks} dimensions")
    for slot, (required, _) in spec.slots.items():
        if required and slot not in params:
            raise FieldError(f"{where}.params.{slot}", "missing")
    if spec.check is not None:
        spec.check(where, layer, {slot: sd[f"params.{key}"] for slot, key in params.items()})
    known.update(layer["outputs"])


def _check_graph(graph: Any, sd: Mapping[str, torch.Tensor]) -> None:
    if not isinstance(graph, dict):
        raise FieldError("graph", f"expected a dict, got {type(graph).__name__}")
    for key in ("inputs", "layers"):
        if key not in graph:
            raise FieldError(f"graph.{key}", "missing")
    if "framework" in graph:
        choice("graph.framework", graph["framework"])
    inputs = graph["inputs"]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(v, str) for v in inputs):
        raise FieldError("graph.inputs", f"expected a non-empty list of var names, got "
                                    f"{short(inputs)}")
    layers = graph["layers"]
    if not isinstance(layers, list) or not layers:
        raise FieldError("graph.layers",
                         f"expected a non-empty list of layers, got {short(layers)}")
    known = set(inputs)
    for i, layer in enumerate(layers):
        _check_layer(i, layer, known, sd)
    outputs = graph.get("outputs") or []
    if not isinstance(outputs, list) or not all(isinstance(v, str) for v in outputs):
        raise FieldError("graph.outputs", f"expected a list of var names, got {short(outputs)}")
    for v in outputs:
        if v not in known:
            raise FieldError("graph.outputs", f"var {v!r} is not produced by any layer")


_ARCH_KWARGS: dict[str, dict[str, AttrCheck]] = {
    "siamese": {"feat_dim": lambda f, v: integer(f, v, 1),
                "num_ids": lambda f, v: integer(f, v, 1),
                "dropout": lambda f, v: number(f, v, 0.0, 1.0),
                "verification": lambda f, v: choice(f, v, ("softmax", "contrastive")),
                "margin": lambda f, v: number(f, v, 1e-9, 1e9)},
    "resnet50": {"width": lambda f, v: integer(f, v, 1, 1 << 16),
                 "global_pool": boolean},
    "caffenet": {"widths": lambda f, v: ints(f, v, 5, 1, 1 << 16),
                 "fc_width": lambda f, v: integer(f, v, 1),
                 "dropout": lambda f, v: number(f, v, 0.0, 1.0)},
    "vgg16": {"widths": lambda f, v: ints(f, v, 5, 1, 1 << 16),
              "fc_width": lambda f, v: integer(f, v, 1),
              "dropout": lambda f, v: number(f, v, 0.0, 1.0)},
}
_BACKBONE_COMMON: dict[str, AttrCheck] = {
    "semantics": lambda f, v: choice(f, v, ("caffe", "matconvnet")),
    "num_classes": lambda f, v: integer(f, v, 1, optional=True),
}


def _check_arch(arch: Any, field: str = "arch", depth: int = 0) -> None:
    if not isinstance(arch, dict):
        raise FieldError(field, f"expected a model spec dict, got {type(arch).__name__}")
    name = arch.get("name")
    if not isinstance(name, str) or name not in _ARCH_KWARGS:
        raise FieldError(f"{field}.name", f"unknown architecture {short(name)}; known: "
                                     f"{sorted(_ARCH_KWARGS)}")
    kwargs = arch.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise FieldError(f"{field}.kwargs", f"expected a dict, got {short(kwargs)}")
    checks = dict(_ARCH_KWARGS[name], **({} if name == "siamese" else _BACKBONE_COMMON))
    for key, value in kwargs.items():
        if key not in checks:
            raise FieldError(f"{field}.kwargs.{key}", f"not an argument of {name!r}; known: "
                                                 f"{sorted(checks)}")
        checks[key](f"{field}.kwargs.{key}", value)
    if name == "siamese":
        if depth > 0:
            raise FieldError(f"{field}.name", "a siamese trunk cannot itself be siamese")
        if "feat_dim" not in kwargs:
            raise FieldError(f"{field}.kwargs.feat_dim", "missing")
        _check_arch(arch.get("trunk"), f"{field}.trunk", depth + 1)


def _check_preprocess(pre: Any) -> tuple[int, int] | None:
    """Light checks of the fields that size allocations; the full check is Preprocess's."""
    if pre is None:
        return None
    if not isinstance(pre, dict):
        raise FieldError("preprocess", f"expected a dict, got {type(pre).__name__}")
    size = None
    for key in ("input_size", "resize"):
        v = pre.get(key)
        if v is None and key == "resize":
            continue
        if v is None:
            continue
        if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(is_int(x) for x in v) \
                or not all(x > 0 for x in v):
            raise FieldError(f"preprocess.{key}",
                             f"expected two positive integers (height, width), got {short(v)}")
        if max(v) > MAX_SIDE:
            raise FieldError(f"preprocess.{key}", f"{list(v)} exceeds the limit of {MAX_SIDE} "
                                             "pixels a side")
        if key == "input_size":
            size = (int(v[0]), int(v[1]))
    mean = pre.get("mean")
    if mean is not None:
        try:
            arr = torch.as_tensor(mean, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise FieldError("preprocess.mean", "expected 3 numbers or an HxWx3 array") from None
        if arr.dim() not in (1, 3) or arr.shape[-1] != 3:
            raise FieldError("preprocess.mean", f"expected 3 numbers or an HxWx3 array, got shape "
                                           f"{tuple(arr.shape)}")
        if not torch.isfinite(arr).all():
            raise FieldError("preprocess.mean", "contains non-finite values")
    return size


def _check_tensors(sd: Any, allow_nonfinite: bool) -> None:
    if not isinstance(sd, dict):
        raise FieldError("state_dict", f"expected a dict of tensors, got {type(sd).__name__}")
    for key, t in sd.items():
        if not isinstance(key, str):
            raise FieldError("state_dict", f"key {short(key)} is not a string")
        field = f"state_dict[{key!r}]"
        if not isinstance(t, torch.Tensor):
            raise FieldError(field, f"expected a tensor, got {type(t).__name__}")
        if key.endswith("num_batches_tracked"):
            continue  # torch BatchNorm's integer counter
        if t.layout != torch.strided or t.is_quantized:
            raise FieldError(field, f"a {t.layout} tensor; parameters must be dense")
        if not t.is_floating_point():
            raise FieldError(field, f"dtype {t.dtype}, but a parameter must be floating point")
        if not allow_nonfinite and t.numel():
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise FieldError(field, f"{bad} non-finite value(s) (NaN/Inf) in "
                                   f"{tuple(t.shape)}; pass allow_nonfinite=True to load it "
                                   "anyway")


def _check_arch_map(arch_map: Any, sd: Mapping[str, torch.Tensor]) -> None:
    if not isinstance(arch_map, dict):
        raise FieldError("arch_map", f"expected a dict, got {type(arch_map).__name__}")
    for k, v in arch_map.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise FieldError("arch_map", f"entry {short(k)}: {short(v)} is not name -> name")
        if v not in sd:
            raise FieldError(f"arch_map[{k!r}]", f"{v!r} is not in the state_dict")


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


def _infer(layer: dict[str, Any], shapes: list[tuple[int, ...]],
           sd: Mapping[str, torch.Tensor]) -> list[tuple[int, ...]] | None:
    """Output shapes (without batch) of one graph layer from its inputs' shapes, by the op's
    shape rule; ``None`` where unknown. Only for the memory estimate."""
    spec = OPS.get(layer["op"])
    if spec is None:
        return None
    p = {slot: sd.get(f"params.{key}") for slot, key in layer.get("params", {}).items()}
    return spec.out_shapes(layer.get("attrs", {}), shapes, p, len(layer["outputs"]))


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
        if not is_int(version) or version < 1:
            raise FieldError("version", f"expected a positive integer, got {short(version)}")
        if "state_dict" not in ckpt:
            raise FieldError("state_dict", "missing (the checkpoint has no 'state_dict')")
        sd = ckpt["state_dict"]
        _check_tensors(sd, allow_nonfinite)
        arch, graph = ckpt.get("arch"), ckpt.get("graph")
        if arch is None and graph is None:
            raise FieldError("arch", "a checkpoint needs an 'arch' spec or a 'graph'")
        if arch is not None:
            _check_arch(arch)
        if graph is not None:
            _check_graph(graph, sd)
        if "arch_map" in ckpt:
            _check_arch_map(ckpt["arch_map"], sd)
        _check_preprocess(ckpt.get("preprocess"))
        if ckpt.get("recipe") is not None and not isinstance(ckpt["recipe"], str):
            raise FieldError("recipe", f"expected a string, got {short(ckpt['recipe'])}")
        for key in ("source", "converter", "meta"):
            if ckpt.get(key) is not None and not isinstance(ckpt[key], dict):
                raise FieldError(key, f"expected a dict, got {type(ckpt[key]).__name__}")
        try:
            need = estimate_memory(ckpt)
        except FieldError:
            raise
        except Exception as exc:  # noqa: BLE001 - the meta build refused the spec
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FieldError("arch", f"cannot build the model ({msg})") from None
        if need > limit:
            raise FieldError("preprocess.input_size" if ckpt.get("preprocess") else "arch",
                        f"building the model and one forward pass would need about "
                        f"{_gib(need)}, over the limit of {_gib(limit)} (raise it with "
                        f"${MEMORY_ENV} or memory_limit=)")
    except FieldError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
