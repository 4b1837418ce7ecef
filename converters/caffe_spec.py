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


def _int_field(w: _Where, field_name: str, value: int, minimum: int) -> int:
    if not minimum <= int(value) <= INT_MAX:
        bound = f">= {minimum}" if minimum else ">= 0"
        raise w.field(f"{field_name} must be an integer {bound} (and < 2^31), got {value}")
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
        return (_int_field(w, f"{section}.{h}", getattr(msg, h), minimum),
                _int_field(w, f"{section}.{wd}", getattr(msg, wd), minimum))
    if not values:
        return None if default is None else (default, default)
    if len(values) > 2:
        raise w.field(f"{section}.{base}: only 2-D {name} is supported, got {len(values)} "
                      f"values {values}")
    out = [_int_field(w, f"{section}.{base}", v, minimum) for v in values]
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
    dil = [_int_field(w, "convolution_param.dilation", d, 1) for d in p.dilation] or [1]
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
        fn = getattr(self, "_" + layer.type, None)
        outs: list[Shape | None] | None = fn(w, ins) if fn is not None else None
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

    # -- per type: check fields and blobs, return the top shapes ----------------------------

    def _Input(self, w: _Where, ins: list) -> list[Shape | None]:
        out: list[Shape | None] = []
        for top in w.layer.tops:
            declared = self.net.inputs.get(top)
            if declared is None:
                out.append(None)
                continue
            for d in declared:
                if not 1 <= d <= INT_MAX:
                    raise w.field(f"input {top!r} has shape {list(declared)}: every dim "
                                  "must be >= 1 (input_param.shape, or input_shape/"
                                  "input_dim in a legacy header)")
            out.append((1,) + tuple(declared[1:]) if len(declared) > 1 else (1,))
        return out

    def _Convolution(self, w: _Where, ins: list) -> list[Shape | None]:
        layer = w.layer
        p = _param(layer, "convolution_param")
        g = conv_geometry(layer, self.prototxt)
        if p.axis != 1:
            raise w.field("convolution_param.axis: only axis 1 (NCHW) is supported")
        if not p.HasField("num_output"):
            raise w.field("convolution_param.num_output is not set")
        n = _int_field(w, "convolution_param.num_output", p.num_output, 1)
        group = _int_field(w, "convolution_param.group", p.group, 1)
        if n % group:
            raise w.field(f"convolution_param.num_output ({n}) is not a multiple of group "
                          f"({group})")
        x = ins[0]
        if x is not None and len(x) != 4:
            raise w.field(f"bottom {layer.bottoms[0]!r} has shape {dims(x)}, Convolution "
                          "needs N x C x H x W")
        if not layer.blobs:
            raise w.blob("missing blob 0 (weights) in the caffemodel")
        blob = layer.blobs[0]
        if x is not None:
            if x[1] % group:
                raise w.field(f"convolution_param.group ({group}) does not divide the "
                              f"{x[1]} channels of bottom {layer.bottoms[0]!r}")
            cin = x[1] // group
        elif blob.ndim == 4:
            cin = blob.shape[1]
        else:
            cin = -1
        weight = (n, cin, *g.kernel)
        bias = (n,)
        self._blob(w, 0, weight, "weights = num_output x channels/group x kernel_h x "
                   "kernel_w", (1, bias, "bias") if p.bias_term else None)
        if p.bias_term:
            self._blob(w, 1, bias, "bias = num_output")
        if x is None:
            return [None]
        size = []
        for axis, (s, k, q, st, d) in enumerate(zip(x[2:], g.kernel, g.pad, g.stride,
                                                    g.dilation, strict=True)):
            extent = d * (k - 1) + 1
            if s + 2 * q < extent:
                name = "hw"[axis]
                raise w.field(f"kernel_{name} {k} (dilation {d}) spans {extent} but the "
                              f"bottom is {s} + 2 x pad {q} along {name} (input {dims(x)})")
            size.append((s + 2 * q - extent) // st + 1)
        out = (x[0], n, *size)
        return [out]

    def _InnerProduct(self, w: _Where, ins: list) -> list[Shape | None]:
        layer = w.layer
        p = _param(layer, "inner_product_param")
        if not p.HasField("num_output"):
            raise w.field("inner_product_param.num_output is not set")
        n = _int_field(w, "inner_product_param.num_output", p.num_output, 1)
        if not layer.blobs:
            raise w.blob("missing blob 0 (weights) in the caffemodel")
        x = ins[0]
        if x is not None:
            axis = _axis(w, "inner_product_param.axis", int(p.axis), len(x))
            k = math.prod(x[axis:])
        else:
            axis, k = None, layer.blobs[0].size // n
            if layer.blobs[0].size != n * k:
                raise w.blob(f"blob 0 (weights) has {layer.blobs[0].size} values, not a "
                             f"multiple of num_output {n}")
        shape = (k, n) if p.transpose else (n, k)
        self._blob(w, 0, shape, "weights", (1, (n,), "bias") if p.bias_term else None)
        if p.bias_term:
            self._blob(w, 1, (n,), "bias = num_output")
        return [None if x is None else (*x[:axis], n)]

    def _Pooling(self, w: _Where, ins: list) -> list[Shape | None]:
        layer = w.layer
        p = _param(layer, "pooling_param")
        if int(p.pool) not in (0, 1):
            raise w.field("pooling_param.pool: STOCHASTIC pooling is not supported (it is "
                          "random at train time and a weighted average at test time in Caffe)")
        g = pool_geometry(layer, self.prototxt)
        x = ins[0]
        if x is None:
            return [None]
        if len(x) != 4:
            raise w.field(f"bottom {layer.bottoms[0]!r} has shape {dims(x)}, Pooling needs "
                          "N x C x H x W")
        if g is None:
            return [(x[0], x[1], 1, 1)]
        size = []
        for axis, (s, k, q, st) in enumerate(zip(x[2:], g.kernel, g.pad, g.stride,
                                                 strict=True)):
            name = "hw"[axis]
            if s + 2 * q < k:
                raise w.field(f"pooling_param: kernel_{name} {k} is larger than the bottom "
                              f"{s} + 2 x pad {q} along {name} (input {dims(x)})")
            size.append(_pooled(s, k, st, q, int(p.round_mode) == 0))
        return [(x[0], x[1], *size)]

    def _LRN(self, w: _Where, ins: list) -> list[Shape | None]:
        p = _param(w.layer, "lrn_param")
        size = _int_field(w, "lrn_param.local_size", p.local_size, 1)
        if size % 2 == 0:
            raise w.field(f"lrn_param.local_size must be odd, got {size}")
        for name in ("alpha", "beta", "k"):
            _finite_field(w, f"lrn_param.{name}", getattr(p, name))
        x = ins[0]
        if x is not None and len(x) != 4:
            raise w.field(f"bottom {w.layer.bottoms[0]!r} has shape {dims(x)}, LRN needs "
                          "N x C x H x W")
        return [x]

    def _BatchNorm(self, w: _Where, ins: list) -> list[Shape | None]:
        layer = w.layer
        p = _param(layer, "batch_norm_param")
        _finite_field(w, "batch_norm_param.eps", p.eps, positive=True)
        _finite_field(w, "batch_norm_param.moving_average_fraction", p.moving_average_fraction)
        if len(layer.blobs) != 3:
            raise w.blob(f"expected 3 blobs (mean, variance, scale factor), found "
                         f"{len(layer.blobs)}")
        x = ins[0]
        c = x[1] if x is not None and len(x) > 1 else layer.blobs[0].size
        self._blob(w, 0, (c,), "mean = channels")
        self._blob(w, 1, (c,), "variance = channels")
        self._blob(w, 2, (1,), "moving-average scale factor")
        return [x]

    def _scale_like(self, w: _Where, ins: list, section: str) -> Shape | None:
        """Scale/Bias: the shape the scale/bias must have (from the bottom), checked."""
        layer = w.layer
        p = _param(layer, section)
        x = ins[0]
        num_axes = int(p.num_axes)
        if num_axes < -1:
            raise w.field(f"{section}.num_axes must be >= -1, got {num_axes}")
        if x is None:
            return None
        axis = _axis(w, f"{section}.axis", int(p.axis), max(len(x), 1))
        end = len(x) if num_axes == -1 else axis + num_axes
        if end > len(x):
            raise w.field(f"{section}: axis {axis} + num_axes {num_axes} exceed the "
                          f"{len(x)}-D bottom")
        want = tuple(x[axis:end])
        if len(ins) > 1 and ins[1] is not None and tuple(ins[1]) != tuple(x[axis:axis + len(
                ins[1])]):
            raise w.field(f"bottom {layer.bottoms[1]!r} has shape {dims(ins[1])}, which does "
                          f"not fit bottom {layer.bottoms[0]!r} {dims(x)} at axis {axis}")
        return want

    def _Scale(self, w: _Where, ins: list) -> list[Shape | None]:
        layer = w.layer
        p = _param(layer, "scale_param")
        want = self._scale_like(w, ins, "scale_param")
        i = 0
        if len(layer.bottoms) == 1:
            if not layer.blobs:
                raise w.blob("missing blob 0 (scale) in the caffemodel")
            if want is not None:
                self._blob(w, 0, want, "scale")
            i = 1
        if p.bias_term:
            if i >= len(layer.blobs):
                raise w.blob(f"missing blob {i} (bias) in the caffemodel")
            if want is not None:
                self._blob(w, i, want, "bias")
            elif i and layer.blobs[i].shape != layer.blobs[0].shape:
                raise w.blob(f"blob {i} (bias) has shape {tuple(layer.blobs[i].shape)} but "
                             f"the scale has {tuple(layer.blobs[0].shape)}")
        return [ins[0]]

    def _Bias(self, w: _Where, ins: list) -> list[Shape | None]:
        layer = w.layer
        want = self._scale_like(w, ins, "bias_param")
        if len(layer.bottoms) == 1:
            if not layer.blobs:
                raise w.blob("missing blob 0 (bias) in the caffemodel")
            if want is not None:
                self._blob(w, 0, want, "bias")
        return [ins[0]]

    def _same(self, w: _Where, ins: list) -> list[Shape | None]:
        return [ins[0]] * len(w.layer.tops)

    def _ReLU(self, w: _Where, ins: list) -> list[Shape | None]:
        _finite_field(w, "relu_param.negative_slope", _param(w.layer, "relu_param")
                      .negative_slope)
        return [ins[0]]

    _Sigmoid = _TanH = _Split = _same

    def _Dropout(self, w: _Where, ins: list) -> list[Shape | None]:
        _finite_field(w, "dropout_param.dropout_ratio",
                      _param(w.layer, "dropout_param").dropout_ratio, below=1.0)
        return [ins[0]]

    def _Power(self, w: _Where, ins: list) -> list[Shape | None]:
        p = _param(w.layer, "power_param")
        for name in ("power", "scale", "shift"):
            _finite_field(w, f"power_param.{name}", getattr(p, name))
        return [ins[0]]

    def _Eltwise(self, w: _Where, ins: list) -> list[Shape | None]:
        layer = w.layer
        p = _param(layer, "eltwise_param")
        for i, c in enumerate(p.coeff):
            _finite_field(w, f"eltwise_param.coeff[{i}]", c)
        if len(p.coeff) and (int(p.operation) != 1 or len(p.coeff) != len(layer.bottoms)):
            raise w.field("eltwise_param.coeff needs the SUM operation and one value per "
                          "bottom")
        known = [(b, s) for b, s in zip(layer.bottoms, ins, strict=True) if s is not None]
        for b, s in known[1:]:
            if s != known[0][1]:
                raise w.field(f"bottom {b!r} has shape {dims(s)} but {known[0][0]!r} has "
                              f"{dims(known[0][1])}; Eltwise needs equal shapes")
        return [known[0][1] if len(known) == len(ins) else None]

    def _Concat(self, w: _Where, ins: list) -> list[Shape | None]:
        layer = w.layer
        p = _param(layer, "concat_param")
        if any(s is None for s in ins):
            return [None]
        first = ins[0]
        axis = int(p.concat_dim) if p.HasField("concat_dim") else int(p.axis)
        axis = _axis(w, "concat_param.axis", axis, len(first))
        for b, s in zip(layer.bottoms[1:], ins[1:], strict=True):
            if len(s) != len(first) or any(a != c for k, (a, c) in enumerate(
                    zip(s, first, strict=True)) if k != axis):
                raise w.field(f"bottom {b!r} has shape {dims(s)}, which does not fit "
                              f"{layer.bottoms[0]!r} {dims(first)} outside axis {axis}")
        return [(*first[:axis], sum(s[axis] for s in ins), *first[axis + 1:])]

    def _Slice(self, w: _Where, ins: list) -> list[Shape | None]:
        layer = w.layer
        p = _param(layer, "slice_param")
        points = [int(s) for s in p.slice_point]
        n = len(layer.tops)
        if points and len(points) != n - 1:
            raise w.field(f"slice_param.slice_point has {len(points)} values for {n} tops "
                          f"(needs {n - 1})")
        if any(b <= a for a, b in zip(points, points[1:], strict=False)):
            raise w.field(f"slice_param.slice_point must increase, got {points}")
        x = ins[0]
        if x is None:
            return [None] * n
        axis = int(p.slice_dim) if p.HasField("slice_dim") else int(p.axis)
        axis = _axis(w, "slice_param.axis", axis, len(x))
        size = x[axis]
        if not points:
            if size % n:
                raise w.field(f"the bottom's axis {axis} ({size}) does not split into {n} "
                              "equal tops")
            points = [size // n * i for i in range(1, n)]
        if points and (points[0] <= 0 or points[-1] >= size):
            raise w.field(f"slice_param.slice_point {points} must lie inside (0, {size})")
        bounds = [0, *points, size]
        return [(*x[:axis], e - s, *x[axis + 1:]) for s, e in zip(bounds, bounds[1:],
                                                                   strict=False)]

    def _Flatten(self, w: _Where, ins: list) -> list[Shape | None]:
        p = _param(w.layer, "flatten_param")
        x = ins[0]
        if x is None:
            return [None]
        a = _axis(w, "flatten_param.axis", int(p.axis), len(x))
        e = _axis(w, "flatten_param.end_axis", int(p.end_axis), len(x))
        if e < a:
            raise w.field(f"flatten_param.end_axis {p.end_axis} is before axis {p.axis}")
        return [(*x[:a], math.prod(x[a:e + 1]), *x[e + 1:])]

    def _Reshape(self, w: _Where, ins: list) -> list[Shape | None]:
        p = _param(w.layer, "reshape_param")
        if int(p.axis) != 0 or int(p.num_axes) != -1:
            raise w.field("reshape_param: only Reshape over all axes (axis 0, num_axes -1) "
                          "is supported")
        want = [int(d) for d in p.shape.dim]
        if sum(d == -1 for d in want) > 1 or any(d < -1 or d > INT_MAX for d in want):
            raise w.field(f"reshape_param.shape {want}: dims must be >= 0 or one -1")
        x = ins[0]
        if x is None:
            return [None]
        if any(d == 0 and i >= len(x) for i, d in enumerate(want)):
            raise w.field(f"reshape_param.shape {want}: a 0 (copy) dim beyond the bottom's "
                          f"{len(x)} axes")
        out = [x[i] if d == 0 else d for i, d in enumerate(want)]
        known = math.prod(d for d in out if d != -1)
        total = math.prod(x)
        if -1 in out:
            if known == 0 or total % known:
                raise w.field(f"reshape_param.shape {want} cannot hold the bottom {dims(x)}")
            out[out.index(-1)] = total // known
        if math.prod(out) != total:
            raise w.field(f"reshape_param.shape {want} has {math.prod(out)} values, the "
                          f"bottom {dims(x)} has {total}")
        return [tuple(out)]

    def _Softmax(self, w: _Where, ins: list) -> list[Shape | None]:
        x = ins[0]
        if x is not None:
            _axis(w, "softmax_param.axis", int(_param(w.layer, "softmax_param").axis), len(x))
        return [x]

    def _labels_fit(self, w: _Where, ins: list, axis: int, section: str) -> None:
        scores, labels = ins
        if scores is None or labels is None:
            return
        a = _axis(w, f"{section}.axis", axis, len(scores))
        items = math.prod(scores[:a]) * math.prod(scores[a + 1:])
        if math.prod(labels) != items:
            raise w.field(f"label bottom {w.layer.bottoms[1]!r} has {math.prod(labels)} "
                          f"values for {items} predictions of {w.layer.bottoms[0]!r} "
                          f"{dims(scores)}")

    def _SoftmaxWithLoss(self, w: _Where, ins: list) -> list[Shape | None]:
        self._labels_fit(w, ins, int(_param(w.layer, "softmax_param").axis), "softmax_param")
        return [()]

    def _Accuracy(self, w: _Where, ins: list) -> list[Shape | None]:
        p = _param(w.layer, "accuracy_param")
        top_k = _int_field(w, "accuracy_param.top_k", p.top_k, 1)
        self._labels_fit(w, ins, int(p.axis), "accuracy_param")
        scores = ins[0]
        if scores is not None:
            classes = scores[int(p.axis) % len(scores)]
            if top_k > classes:
                raise w.field(f"accuracy_param.top_k {top_k} exceeds the {classes} classes")
        return [()]

    def _Euclidean(self, w: _Where, ins: list) -> list[Shape | None]:
        a, b = ins
        if a is not None and b is not None and a != b:
            raise w.field(f"bottoms have shapes {dims(a)} and {dims(b)}; they must be equal")
        return [a]

    def _PairEuclidean(self, w: _Where, ins: list) -> list[Shape | None]:
        if len(w.layer.tops) > 1 and len(w.layer.bottoms) < 2:
            raise w.field("the second (label_dif) top needs the label bottom")
        return [None] * len(w.layer.tops)  # batch halves: unknown at batch 1


for _t in DATA_TYPES - {"Input"}:
    setattr(_Checker, "_" + _t, lambda self, w, ins: [None] * len(w.layer.tops))


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
