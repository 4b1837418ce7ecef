"""The second half of the MatConvNet reader's boundary: check an :class:`MCNModel` as
``vl_nnconv``/``vl_nnpool``/DagNN would, before the converter computes anything.

For every layer of a known ``dagnn.*`` class: the number of inputs and outputs, block
properties that must be integers (``pad`` >= 0 with 1 or 4 values, ``stride``/``dilate``/
``poolSize`` >= 1 with 1 or 2, ``size``...) or finite numbers (``leak``, ``rate``,
``epsilon``, LRN ``param``), parameter sizes (filters H x W x C/groups x K, biases K,
BatchNorm mult/bias K and moments K x 2), ``meta.normalization`` (``imageSize``,
``averageImage``) and non-finite parameters. Var shapes are propagated from the input size
the dry run uses (1 x 3 x H x W), so geometry that does not fit is refused here and the dry
run's peak memory is estimated before it allocates. Errors are :class:`MatFormatError` lines
naming the file and the layer, param or field in MatConvNet's words.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from porting.checkpoint_schema import MAX_SIDE  # what a checkpoint may hold

from .limits import (
    DEFAULT_MAX_MEMORY_GB,
    MemoryPlan,
    check_memory,
    dims,
    finite,
    integer,
    integers,
    nonfinite_count,
    show,
)
from .matconvnet_model import MCNLayer, MCNModel
from .matfile import MatFormatError

Shape = tuple[int, ...]

# dagnn class -> ((min inputs, max inputs), (min outputs, max outputs)); None: unbounded.
ARITY: dict[str, tuple[tuple[int, int | None], tuple[int, int | None]]] = {
    "dagnn.Conv": ((1, 1), (1, 1)), "dagnn.BatchNorm": ((1, 1), (1, 1)),
    "dagnn.ReLU": ((1, 1), (1, 1)), "dagnn.Pooling": ((1, 1), (1, 1)),
    "dagnn.LRN": ((1, 1), (1, 1)), "dagnn.Sum": ((1, None), (1, 1)),
    "dagnn.Concat": ((1, None), (1, 1)), "dagnn.DropOut": ((1, 1), (1, 1)),
    "dagnn.Square": ((2, 2), (1, 1)), "dagnn.SoftMax": ((1, 1), (1, 1)),
    "dagnn.Sigmoid": ((1, 1), (1, 1)), "dagnn.Scale": ((1, 2), (1, 1)),
    "dagnn.Loss": ((2, 2), (1, 1)),
}
LOSS_KINDS = ("softmaxlog", "classerror", "topkerror")


@dataclass
class ModelCheck:
    """What the check learnt: var shapes (None where unknown), the dry run's input size and
    estimated peak, and the non-finite parameters allowed by ``--allow-nonfinite``."""

    input_size: tuple[int, int]
    shapes: dict[str, Shape | None] = field(default_factory=dict)
    peak_bytes: int = 0
    nonfinite: list[str] = field(default_factory=list)


def _allowed(lo: int, hi: int | None) -> str:
    if hi is None:
        return f"at least {lo}"
    return f"exactly {lo}" if lo == hi else f"{lo} to {hi}"


class _Checker:
    def __init__(self, model: MCNModel, allow_nonfinite: bool) -> None:
        self.model = model
        self.path = model.source_path
        self.allow_nonfinite = allow_nonfinite
        self.plan = MemoryPlan()
        self.shapes: dict[str, Shape | None] = {}
        self.nonfinite: list[str] = []

    def fail(self, layer: MCNLayer | None, msg: str) -> MatFormatError:
        where = f"layer {layer.name!r} ({layer.type}): " if layer is not None else ""
        return MatFormatError(f"{self.path}: {where}{msg}")

    # -- values -----------------------------------------------------------------------------

    def ints(self, layer: MCNLayer, key: str, counts: tuple[int, ...], minimum: int,
             default: int) -> list[int]:
        """A geometry block property of 1 (repeated) or ``counts[-1]`` integers in
        ``minimum..MAX_SIDE`` (the bound a checkpoint may hold)."""
        value = layer.block.get(key)
        if value is None:
            return [default] * counts[-1]
        out = integers(value, counts, minimum)
        if out is None or max(out) > MAX_SIDE:
            n = " or ".join(map(str, counts))
            raise self.fail(layer, f"block.{key} must be {n} finite integers >= {minimum} "
                                   f"(at most {MAX_SIDE}), got {show(value)}")
        return out * counts[-1] if len(out) == 1 else out

    def number(self, layer: MCNLayer, key: str, default: float, *, positive: bool = False,
               below: float | None = None) -> float:
        value = layer.block.get(key, default)
        if value is None:
            value = default
        f = finite(value)
        if f is None or (positive and f <= 0) or (below is not None and not 0 <= f < below):
            need = "a finite number" + (" > 0" if positive else "") + (
                f" in [0, {below:g})" if below is not None else "")
            raise self.fail(layer, f"block.{key} must be {need}, got {show(value)}")
        return f

    def param(self, layer: MCNLayer, i: int) -> np.ndarray | None:
        if i >= len(layer.params):
            return None
        return self.model.params[layer.params[i]].value

    # -- the walk ---------------------------------------------------------------------------

    def run(self, inputs: dict[str, Shape]) -> None:
        self.shapes.update(inputs)
        self.check_params()
        for layer in self.model.layers:
            arity = ARITY.get(layer.type)
            if arity is not None:
                for what, n, (lo, hi) in (("input", len(layer.inputs), arity[0]),
                                          ("output", len(layer.outputs), arity[1])):
                    if n < lo or (hi is not None and n > hi):
                        plural = "" if (hi or lo) == 1 else "s"
                        raise self.fail(layer, f"takes {_allowed(lo, hi)} {what}{plural}, "
                                               f"got {n}")
            ins = [self.shapes.get(v) for v in layer.inputs]
            fn = LAYER_CHECKS.get(layer.type)
            outs = fn(self, layer, ins) if fn is not None and arity is not None else None
            if outs is None or len(outs) != len(layer.outputs):
                outs = [None] * len(layer.outputs)
            for v, s in zip(layer.outputs, outs, strict=True):
                self.shapes[v] = s
            self.plan.add(layer.name, layer.inputs, [
                (v, math.prod(s) if s is not None else 0)
                for v, s in zip(layer.outputs, outs, strict=True)])

    def check_params(self) -> None:
        for name, p in self.model.params.items():
            bad = nonfinite_count(p.value)
            if not bad:
                continue
            if not self.allow_nonfinite:
                raise self.fail(None, f"param {name!r} has {bad} non-finite value(s) "
                                      f"(NaN/Inf) of {p.value.size}; --allow-nonfinite "
                                      "converts anyway")
            self.nonfinite.append(f"param {name!r}: {bad} of {p.value.size}")


# Per class: check the block and params, return the output shapes.


def _conv(ck: _Checker, layer: MCNLayer, ins: list) -> list[Shape | None]:
    pad = ck.ints(layer, "pad", (1, 4), 0, 0)
    stride = ck.ints(layer, "stride", (1, 2), 1, 1)
    dilate = ck.ints(layer, "dilate", (1, 2), 1, 1)
    f = ck.param(layer, 0)
    if f is None:
        raise ck.fail(layer, f"needs a filter parameter (params has {len(layer.params)})")
    if f.ndim > 4 or f.size == 0:
        raise ck.fail(layer, f"filter {layer.params[0]!r} has size {dims(f.shape)}; it "
                               "must be a non-empty H x W x C x K array")
    fs = f.shape + (1,) * (4 - f.ndim)
    size = layer.block.get("size")
    if size is not None:
        want = integers(size, (4,), 1)
        if want is None:
            raise ck.fail(layer, f"block.size must be 4 positive integers, got "
                                   f"{show(size)}")
        if list(fs) != want:
            raise ck.fail(layer, f"filter {layer.params[0]!r} has size {dims(fs)} but "
                                   f"block.size is {dims(want)}")
    has_bias = layer.block.get("hasBias", len(layer.params) > 1)
    if not isinstance(has_bias, bool):
        raise ck.fail(layer, f"block.hasBias must be true or false, got {show(has_bias)}")
    if has_bias:
        b = ck.param(layer, 1)
        if b is None:
            raise ck.fail(layer, "block.hasBias is true but params has no bias")
        if b.size != fs[3]:
            raise ck.fail(layer, f"bias {layer.params[1]!r} has {b.size} values for "
                                   f"{fs[3]} filters")
    x = ins[0]
    if x is None:
        return [None]
    if len(x) == 2:  # MatConvNet treats an N x C matrix as a 1 x 1 map
        x = (*x, 1, 1)
    if len(x) != 4:
        raise ck.fail(layer, f"input {layer.inputs[0]!r} has size {dims(x)}; a "
                               "convolution needs H x W x C x N")
    if x[1] % fs[2] or fs[3] % (x[1] // fs[2]):
        raise ck.fail(layer, f"filter {layer.params[0]!r} has depth {fs[2]} and {fs[3]} "
                               f"filters, which does not fit the {x[1]} channels of input "
                               f"{layer.inputs[0]!r} (channels = depth x groups, and "
                               "groups must divide the filters)")
    out = []
    for axis, (s, k, d, st) in enumerate(zip(x[2:], fs[:2], dilate, stride, strict=True)):
        extent = d * (k - 1) + 1
        padded = s + pad[2 * axis] + pad[2 * axis + 1]
        if padded < extent:
            name = ("height", "width")[axis]
            raise ck.fail(layer, f"the filter's {name} {k} (dilate {d}) spans {extent} "
                                   f"but input {layer.inputs[0]!r} is {s} + pad "
                                   f"{pad[2 * axis]}+{pad[2 * axis + 1]} (input "
                                   f"{dims(x)}, N x C x H x W)")
        out.append((padded - extent) // st + 1)
    return [(x[0], fs[3], *out)]

def _pooling(ck: _Checker, layer: MCNLayer, ins: list) -> list[Shape | None]:
    method = layer.block.get("method", "max")
    if not isinstance(method, str) or method not in ("max", "avg"):
        raise ck.fail(layer, f"block.method must be 'max' or 'avg', got {show(method)}")
    pool = ck.ints(layer, "poolSize", (1, 2), 1, 1)
    pad = ck.ints(layer, "pad", (1, 4), 0, 0)
    stride = ck.ints(layer, "stride", (1, 2), 1, 1)
    x = ins[0]
    if x is None:
        return [None]
    if len(x) != 4:
        raise ck.fail(layer, f"input {layer.inputs[0]!r} has size {dims(x)}; pooling "
                               "needs H x W x C x N")
    out = []
    for axis, (s, k, st) in enumerate(zip(x[2:], pool, stride, strict=True)):
        padded = s + pad[2 * axis] + pad[2 * axis + 1]
        if padded < k:
            name = ("height", "width")[axis]
            raise ck.fail(layer, f"block.poolSize {name} {k} is larger than input "
                                   f"{layer.inputs[0]!r} {s} + pad {pad[2 * axis]}+"
                                   f"{pad[2 * axis + 1]} (input {dims(x)}, N x C x H x W)")
        out.append((padded - k) // st + 1)
    return [(x[0], x[1], *out)]

def _batchnorm(ck: _Checker, layer: MCNLayer, ins: list) -> list[Shape | None]:
    ck.number(layer, "epsilon", 1e-5, positive=True)
    values = [ck.param(layer, i) for i in range(3)]
    if any(v is None for v in values):
        raise ck.fail(layer, f"needs mult, bias and moments params (params has "
                               f"{len(layer.params)})")
    mult, bias, moments = values
    x = ins[0]
    c = x[1] if x is not None and len(x) > 1 else mult.size
    if mult.size != c or bias.size != c or moments.size != 2 * c:
        raise ck.fail(layer, f"params {layer.params[0]!r}/{layer.params[1]!r}/"
                               f"{layer.params[2]!r} have sizes {dims(mult.shape)}/"
                               f"{dims(bias.shape)}/{dims(moments.shape)}; {c} channels "
                               f"need {c}, {c} and {c}x2 values")
    return [x]

def _relu(ck: _Checker, layer: MCNLayer, ins: list) -> list[Shape | None]:
    ck.number(layer, "leak", 0.0)
    return [ins[0]]

def _lrn(ck: _Checker, layer: MCNLayer, ins: list) -> list[Shape | None]:
    param = layer.block.get("param", [5, 1, 1e-4, 0.75])
    values = [finite(v) for v in param] if isinstance(param, list) else []
    if len(values) != 4 or any(v is None for v in values) or integer(values[0], 1) is None:
        raise ck.fail(layer, "block.param must be [N kappa alpha beta] (N a positive "
                               f"integer, all finite), got {show(param)}")
    return [ins[0]]

def _dropout(ck: _Checker, layer: MCNLayer, ins: list) -> list[Shape | None]:
    ck.number(layer, "rate", 0.5, below=1.0)
    return [ins[0]]

def _equal(ck: _Checker, layer: MCNLayer, ins: list) -> list[Shape | None]:
    known = [(v, s) for v, s in zip(layer.inputs, ins, strict=True) if s is not None]
    for v, s in known[1:]:
        if s != known[0][1]:
            raise ck.fail(layer, f"input {v!r} has size {dims(s)} but {known[0][0]!r} "
                                   f"has {dims(known[0][1])} (N x C x H x W)")
    return [known[0][1] if known and len(known) == len(ins) else None]


def _concat(ck: _Checker, layer: MCNLayer, ins: list) -> list[Shape | None]:
    dim = integer(layer.block.get("dim", 3), 1)
    if dim is None or dim > 4:
        raise ck.fail(layer, f"block.dim must be 1, 2, 3 or 4, got "
                               f"{show(layer.block.get('dim'))}")
    if any(s is None or len(s) != 4 for s in ins):
        return [None]
    axis = {1: 2, 2: 3, 3: 1, 4: 0}[dim]
    first = ins[0]
    for v, s in zip(layer.inputs[1:], ins[1:], strict=True):
        if any(a != b for k, (a, b) in enumerate(zip(s, first, strict=True)) if k != axis):
            raise ck.fail(layer, f"input {v!r} has size {dims(s)}, which does not fit "
                                   f"{layer.inputs[0]!r} {dims(first)} outside dim {dim}")
    return [(*first[:axis], sum(s[axis] for s in ins), *first[axis + 1:])]

def _softmax(ck: _Checker, layer: MCNLayer, ins: list) -> list[Shape | None]:
    return [ins[0]]


def _scale(ck: _Checker, layer: MCNLayer, ins: list) -> list[Shape | None]:
    if len(layer.inputs) == 1 and ck.param(layer, 0) is None:
        raise ck.fail(layer, "needs a scale parameter")
    return [ins[0]]

def _loss(ck: _Checker, layer: MCNLayer, ins: list) -> list[Shape | None]:
    kind = layer.block.get("loss", "softmaxlog")
    if not isinstance(kind, str) or kind not in LOSS_KINDS:
        raise ck.fail(layer, f"block.loss {show(kind)} is not supported; supported: "
                               f"{', '.join(LOSS_KINDS)}")
    opts = layer.block.get("opts") or []
    if kind == "topkerror" and isinstance(opts, list) and "topK" in opts:
        i = opts.index("topK")
        if i + 1 >= len(opts) or integer(opts[i + 1], 1) is None:
            raise ck.fail(layer, "block.opts 'topK' must be followed by a positive "
                                   "integer")
    return [()]


#: ``dagnn.*`` class -> its check: the block and params, then the output sizes.
LAYER_CHECKS: dict[str, Callable[[_Checker, MCNLayer, list], list[Shape | None]]] = {
    "dagnn.Conv": _conv,
    "dagnn.Pooling": _pooling,
    "dagnn.BatchNorm": _batchnorm,
    "dagnn.ReLU": _relu,
    "dagnn.LRN": _lrn,
    "dagnn.DropOut": _dropout,
    "dagnn.Concat": _concat,
    "dagnn.SoftMax": _softmax,
    "dagnn.Scale": _scale,
    "dagnn.Loss": _loss,
    "dagnn.Sum": _equal,
    "dagnn.Square": _equal,
    "dagnn.Sigmoid": _softmax,
}


def input_size(model: MCNModel) -> tuple[int, int]:
    """The dry run's input size: 224 x 224 for the paper's two-stream net, else
    ``meta.normalization.imageSize(1:2)`` (checked), else 224 x 224."""
    types = {layer.type for layer in model.layers}
    names = {layer.name for layer in model.layers}
    norm = model.meta.get("normalization") or {}
    if not isinstance(norm, dict):
        raise MatFormatError(f"{model.source_path}: meta.normalization should be a struct, got "
                             f"{show(norm)}")
    size = norm.get("imageSize")
    if size is not None:
        got = integers(size, (2, 3, 4), 1)
        if got is None:
            raise MatFormatError(f"{model.source_path}: meta.normalization.imageSize must be "
                                 f"[H W] or [H W C] or [H W C N] positive integers, got "
                                 f"{show(size)}")
    avg = norm.get("averageImage")
    if isinstance(avg, np.ndarray) and nonfinite_count(avg):
        raise MatFormatError(f"{model.source_path}: meta.normalization.averageImage has "
                             "non-finite values (NaN/Inf)")
    if "dagnn.Square" in types and "fc9" in names:
        return (224, 224)
    return (got[0], got[1]) if size is not None else (224, 224)


def check_model(model: MCNModel, *, allow_nonfinite: bool = False,
                max_memory_gb: float = DEFAULT_MAX_MEMORY_GB,
                label_vars: set[str] | None = None) -> ModelCheck:
    """Check every layer of ``model`` (see the module docstring); raise MatFormatError."""
    h, w = input_size(model)
    produced = {v for layer in model.layers for v in layer.outputs}
    loss_labels = {layer.inputs[1] for layer in model.layers
                   if layer.type == "dagnn.Loss" and len(layer.inputs) > 1}
    labels = loss_labels if label_vars is None else label_vars
    feeds: dict[str, Shape] = {}
    for layer in model.layers:
        for v in layer.inputs:
            if v not in produced and v not in feeds:
                feeds[v] = (1,) if v in labels else (1, 3, h, w)
    checker = _Checker(model, allow_nonfinite)
    checker.run(feeds)
    result = ModelCheck((h, w), checker.shapes, nonfinite=checker.nonfinite)
    result.peak_bytes, where = checker.plan.peak_bytes(
        (v, math.prod(s)) for v, s in feeds.items())
    refusal = check_memory(result.peak_bytes, where, max_memory_gb, model.source_path,
                           f"input {h}x{w}")
    if refusal:
        raise MatFormatError(refusal)
    return result


def nonfinite_note(result: ModelCheck) -> str | None:
    """The stderr note for ``--allow-nonfinite`` when some parameters were not finite."""
    if not result.nonfinite:
        return None
    return ("--allow-nonfinite: converted despite non-finite values in "
            + "; ".join(result.nonfinite[:4]) + (" ..." if len(result.nonfinite) > 4 else ""))


__all__ = ["ARITY", "ModelCheck", "check_model", "input_size", "nonfinite_note"]
