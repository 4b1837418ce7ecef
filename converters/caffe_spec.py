"""The second half of the Caffe reader's boundary: check a loaded :class:`CaffeNet` as Caffe's
``LayerSetUp``/``Reshape`` would, before the converter computes anything.

For every layer: the number of bottoms and tops its type takes, the ``*_param`` fields that
must be integers (kernel, stride >= 1, pad >= 0, dilation >= 1, group dividing the channels,
num_output, local_size...) or finite floats, blob shapes against the layer's fields and its
bottom's shape, and non-finite weights. Shapes are propagated from the declared ``Input``
shapes (batch 1, as the dry run feeds), so geometry that does not fit the input is refused
here and the dry run's peak memory is estimated before it allocates. Errors are
:class:`CaffeFormatError` lines naming the file and the layer with Caffe's field names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from google.protobuf.message import Message

from porting.checkpoint_schema import MAX_SIDE  # what a checkpoint may hold

from .caffe_reader import CaffeFormatError, CaffeLayer, CaffeNet
from .limits import (
    DEFAULT_MAX_MEMORY_GB,
    INT_MAX,
    MemoryPlan,
    check_memory,
    dims,
    nonfinite_count,
)

Shape = tuple[int, ...]

DATA_TYPES = frozenset({"Input", "Data", "ImageData", "ReidData", "DummyData", "HDF5Data",
                        "MemoryData", "WindowData"})

# type -> ((min bottoms, max bottoms), (min tops, max tops)); None: no upper bound. Caffe's
# ExactNum/Min/MaxBottomBlobs, narrowed where the converter supports less (one bottom/top
# pair per Convolution, no per-item loss top).
ARITY: dict[str, tuple[tuple[int, int | None], tuple[int, int | None]]] = {
    **{t: ((0, 0), (1, None)) for t in DATA_TYPES},
    "Convolution": ((1, 1), (1, 1)), "InnerProduct": ((1, 1), (1, 1)),
    "Pooling": ((1, 1), (1, 1)), "LRN": ((1, 1), (1, 1)), "BatchNorm": ((1, 1), (1, 1)),
    "Scale": ((1, 2), (1, 1)), "Bias": ((1, 2), (1, 1)), "ReLU": ((1, 1), (1, 1)),
    "Sigmoid": ((1, 1), (1, 1)), "TanH": ((1, 1), (1, 1)), "Eltwise": ((2, None), (1, 1)),
    "Power": ((1, 1), (1, 1)), "Concat": ((1, None), (1, 1)), "Slice": ((1, 1), (1, None)),
    "Flatten": ((1, 1), (1, 1)), "Reshape": ((1, 1), (1, 1)), "Dropout": ((1, 1), (1, 1)),
    "Softmax": ((1, 1), (1, 1)), "Split": ((1, 1), (1, None)),
    "SoftmaxWithLoss": ((2, 2), (1, 1)), "Accuracy": ((2, 2), (1, 1)),
    "Euclidean": ((2, 2), (1, 1)), "PairEuclidean": ((1, 2), (1, 2)),
}


def _allowed(lo: int, hi: int | None) -> str:
    if hi is None:
        return f"at least {lo}"
    return f"exactly {lo}" if lo == hi else f"{lo} to {hi}"


@dataclass(frozen=True)
class Geometry:
    """Resolved 2-D kernel/pad/stride/dilation of a Convolution or Pooling layer."""

    kernel: tuple[int, int]
    pad: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)


@dataclass
class NetCheck:
    """What the check learnt: blob shapes (None where unknown), the dry run's estimated peak
    (None when input shapes are not all declared) and the non-finite weights allowed."""

    shapes: dict[str, Shape | None] = field(default_factory=dict)
    peak_bytes: int | None = None
    nonfinite: list[str] = field(default_factory=list)


class _Where:
    """Message prefixes for one layer: prototxt fields and caffemodel blobs."""

    def __init__(self, layer: CaffeLayer, prototxt: str, caffemodel: str | None) -> None:
        self.layer = layer
        self.proto = f"{prototxt}: layer {layer.name!r} ({layer.type})"
        self.model = f"{caffemodel or prototxt}: layer {layer.name!r} ({layer.type})"

    def field(self, msg: str) -> CaffeFormatError:
        return CaffeFormatError(f"{self.proto}: {msg}")

    def blob(self, msg: str) -> CaffeFormatError:
        return CaffeFormatError(f"{self.model}: {msg}")


def _param(layer: CaffeLayer, name: str) -> Message:
    return layer.params.get(name) or getattr(layer.proto, name)


def _int_field(w: _Where, field_name: str, value: int, minimum: int,
               maximum: int = INT_MAX) -> int:
    if not minimum <= int(value) <= maximum:
        bound = f">= {minimum}" if minimum else ">= 0"
        top = "< 2^31" if maximum == INT_MAX else f"<= {maximum}"
        raise w.field(f"{field_name} must be an integer {bound} (and {top}), got {value}")
    return int(value)


def _finite_field(w: _Where, field_name: str, value: float, *, positive: bool = False,
                  below: float | None = None) -> float:
    v = float(value)
    bad = not math.isfinite(v) or (positive and v <= 0) or (below is not None and
                                                             not 0 <= v < below)
    if bad:
        need = "a finite number" + (" > 0" if positive else "") + (
            f" in [0, {below:g})" if below is not None else "")
        raise w.field(f"{field_name} must be {need}, got {v}")
    return v


def _hw(w: _Where, msg: Message, section: str, name: str, default: int | None,
        minimum: int) -> tuple[int, int] | None:
    """Caffe's resolution of ``<name>_h/_w`` or the (repeated or scalar) ``<name>`` field;
    ``None`` when neither is set and there is no default."""
    h, wd = f"{name}_h", f"{name}_w"
    base = "kernel_size" if name == "kernel" else name
    raw = getattr(msg, base)
    repeated = not isinstance(raw, int)
    values = list(raw) if repeated else ([raw] if msg.HasField(base) else [])
    if msg.HasField(h) or msg.HasField(wd):
        if values:
            raise w.field(f"{section}: either {base} or {h}/{wd} can be given, not both")
        if not (msg.HasField(h) and msg.HasField(wd)):
            raise w.field(f"{section}: {h} and {wd} must be given together")
        return (_int_field(w, f"{section}.{h}", getattr(msg, h), minimum, MAX_SIDE),
                _int_field(w, f"{section}.{wd}", getattr(msg, wd), minimum, MAX_SIDE))
    if not values:
        return None if default is None else (default, default)
    if len(values) > 2:
        raise w.field(f"{section}.{base}: only 2-D {name} is supported, got {len(values)} "
                      f"values {values}")
    out = [_int_field(w, f"{section}.{base}", v, minimum, MAX_SIDE) for v in values]
    return (out[0], out[-1])


def conv_geometry(layer: CaffeLayer, prototxt: str = "<prototxt>") -> Geometry:
    """The checked geometry of a Convolution layer."""
    w = _Where(layer, prototxt, None)
    p = _param(layer, "convolution_param")
    kernel = _hw(w, p, "convolution_param", "kernel", None, 1)
    if kernel is None:
        raise w.field("convolution_param has no kernel size (kernel_size or kernel_h/kernel_w)")
    pad = _hw(w, p, "convolution_param", "pad", 0, 0)
    stride = _hw(w, p, "convolution_param", "stride", 1, 1)
    dil = [_int_field(w, "convolution_param.dilation", d, 1, MAX_SIDE)
           for d in p.dilation] or [1]
    if len(dil) > 2:
        raise w.field(f"convolution_param.dilation: only 2-D dilation is supported, got {dil}")
    return Geometry(kernel, pad, stride, (dil[0], dil[-1]))  # type: ignore[arg-type]


def pool_geometry(layer: CaffeLayer, prototxt: str = "<prototxt>") -> Geometry | None:
    """The checked geometry of a Pooling layer (``None`` for global pooling)."""
    w = _Where(layer, prototxt, None)
    p = _param(layer, "pooling_param")
    if p.global_pooling:
        if p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w"):
            raise w.field("pooling_param: with global_pooling the kernel size cannot be given")
        pad = _hw(w, p, "pooling_param", "pad", 0, 0)
        stride = _hw(w, p, "pooling_param", "stride", 1, 1)
        if pad != (0, 0) or stride != (1, 1):
            raise w.field("pooling_param: with global_pooling only pad 0 and stride 1 are "
                          f"allowed, got pad {list(pad)} stride {list(stride)}")  # type: ignore
        return None
    kernel = _hw(w, p, "pooling_param", "kernel", None, 1)
    if kernel is None:
        raise w.field("pooling_param has no kernel size (kernel_size or kernel_h/kernel_w)")
    pad = _hw(w, p, "pooling_param", "pad", 0, 0)
    stride = _hw(w, p, "pooling_param", "stride", 1, 1)
    assert pad is not None and stride is not None
    for axis, k, q in (("h", kernel[0], pad[0]), ("w", kernel[1], pad[1])):
        if q >= k:  # Caffe: CHECK_LT(pad_h_, kernel_h_)
            raise w.field(f"pooling_param: pad ({q}) must be smaller than the kernel ({k}) "
                          f"along {axis}")
    return Geometry(kernel, pad, stride)


def _pooled(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _axis(w: _Where, field_name: str, axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise w.field(f"{field_name} {axis} is out of range for a {ndim}-D bottom")
    return axis % ndim


class _Checker:
    def __init__(self, net: CaffeNet, prototxt: str, caffemodel: str | None,
                 allow_nonfinite: bool) -> None:
        self.net, self.prototxt, self.caffemodel = net, prototxt, caffemodel
        self.allow_nonfinite = allow_nonfinite
        self.result = NetCheck()
        self.plan = MemoryPlan()
        self.version: dict[str, int] = {}  # blob -> writes so far (in-place layers)

    def shape(self, blob: str) -> Shape | None:
        return self.result.shapes.get(blob)

    def var(self, blob: str) -> str:
        return f"{blob}#{self.version.get(blob, 0)}"

    def run(self) -> NetCheck:
        for layer in self.net.layers:
            self.layer(layer)
        return self.result

    def layer(self, layer: CaffeLayer) -> None:
        w = _Where(layer, self.prototxt, self.caffemodel)
        arity = ARITY.get(layer.type)
        if arity is not None:
            for what, n, (lo, hi) in (("bottom", len(layer.bottoms), arity[0]),
                                      ("top", len(layer.tops), arity[1])):
                if n < lo or (hi is not None and n > hi):
                    plural = "" if (hi or lo) == 1 else "s"
                    raise w.field(f"takes {_allowed(lo, hi)} {what}{plural}, got {n}")
        for i, value in enumerate(layer.loss_weight):
            _finite_field(w, f"loss_weight[{i}]", value)
        self.weights(w)
        ins = [self.shape(b) for b in layer.bottoms]
        from .caffe_checks import CHECKS

        fn = CHECKS.get(layer.type)
        outs: list[Shape | None] | None = fn(self, w, ins) if fn is not None else None
        if outs is None or len(outs) != len(layer.tops):
            outs = [None] * len(layer.tops)
        inputs = [self.var(b) for b in layer.bottoms]
        for top, s in zip(layer.tops, outs, strict=True):
            self.result.shapes[top] = s
        produced = []
        for top, s in zip(layer.tops, outs, strict=True):
            self.version[top] = self.version.get(top, 0) + 1
            produced.append((self.var(top), math.prod(s) if s is not None else 0))
        self.plan.add(layer.name, inputs, produced)

    # -- weights --------------------------------------------------------------------------

    def weights(self, w: _Where) -> None:
        for i, blob in enumerate(w.layer.blobs):
            bad = nonfinite_count(blob)
            if bad:
                what = f"layer {w.layer.name!r} ({w.layer.type}) blob {i}"
                if not self.allow_nonfinite:
                    raise w.blob(f"blob {i} has {bad} non-finite value(s) (NaN/Inf) of "
                                 f"{blob.size}; --allow-nonfinite converts anyway")
                self.result.nonfinite.append(f"{what}: {bad} of {blob.size}")

    def _blob(self, w: _Where, i: int, shape: Sequence[int], what: str,
              swap_with: tuple[int, Sequence[int], str] | None = None) -> None:
        layer = w.layer
        if i >= len(layer.blobs):
            raise w.blob(f"missing blob {i} ({what}) in the caffemodel")
        if layer.blob_matches(i, shape):
            return
        if swap_with is not None:
            j, other, other_what = swap_with
            if (j < len(layer.blobs) and layer.blob_matches(i, other)
                    and layer.blob_matches(j, shape)):
                raise w.blob(f"blobs {min(i, j)} and {max(i, j)} are swapped: blob {i} has "
                             f"the {other_what} shape {tuple(layer.blobs[i].shape)}, blob {j} "
                             f"the {what} shape {tuple(layer.blobs[j].shape)}")
        raise w.blob(f"blob {i} ({what}) has shape {tuple(layer.blobs[i].shape)}, expected "
                     f"{tuple(shape)}")

def check_net(net: CaffeNet, prototxt: str, caffemodel: str | None = None, *,
              allow_nonfinite: bool = False,
              max_memory_gb: float = DEFAULT_MAX_MEMORY_GB) -> NetCheck:
    """Check every layer of ``net`` (see the module docstring); raise CaffeFormatError."""
    checker = _Checker(net, prototxt, caffemodel, allow_nonfinite)
    result = checker.run()
    declared = dict(net.inputs)
    if declared and all(declared.values()):  # the dry run runs only then
        peak, where = checker.plan.peak_bytes([])  # the Input layers produce the feeds
        result.peak_bytes = peak
        shown = ", ".join(f"input {t!r} {dims(result.shapes.get(t) or ())}" for t in declared)
        refusal = check_memory(peak, where, max_memory_gb, prototxt, shown)
        if refusal:
            raise CaffeFormatError(refusal)
    return result


def nonfinite_note(result: NetCheck) -> str | None:
    """The stderr note for ``--allow-nonfinite`` when some weights were not finite."""
    if not result.nonfinite:
        return None
    return ("--allow-nonfinite: converted despite non-finite weights in "
            + "; ".join(result.nonfinite[:4]) + (" ..." if len(result.nonfinite) > 4 else ""))


__all__ = ["ARITY", "Geometry", "NetCheck", "check_net", "conv_geometry", "nonfinite_note",
           "pool_geometry"]
