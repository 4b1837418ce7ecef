"""The per-type checks of :mod:`porting.converters.caffe_spec`: one function per Caffe layer
type, registered by its type name, that checks the layer's ``*_param`` fields and blobs
against its bottoms' shapes and returns its tops' shapes (``None`` where unknown), as the
type's ``LayerSetUp``/``Reshape`` would."""

from __future__ import annotations

import math
from collections.abc import Callable

from .caffe_spec import (
    DATA_TYPES,
    Shape,
    _axis,
    _Checker,
    _finite_field,
    _int_field,
    _param,
    _pooled,
    _Where,
    conv_geometry,
    pool_geometry,
)
from .limits import INT_MAX, dims

Check = Callable[[_Checker, _Where, list], "list[Shape | None]"]
#: Caffe layer type -> its check.
CHECKS: dict[str, Check] = {}


def check(type_name: str) -> Callable[[Check], Check]:
    """Register ``fn`` as the check of Caffe layers of ``type_name``."""
    def deco(fn: Check) -> Check:
        CHECKS[type_name] = fn
        return fn
    return deco


@check("Input")
def _input(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    out: list[Shape | None] = []
    for top in w.layer.tops:
        declared = ck.net.inputs.get(top)
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


@check("Convolution")
def _convolution(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    layer = w.layer
    p = _param(layer, "convolution_param")
    g = conv_geometry(layer, ck.prototxt)
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
    ck._blob(w, 0, weight, "weights = num_output x channels/group x kernel_h x "
               "kernel_w", (1, bias, "bias") if p.bias_term else None)
    if p.bias_term:
        ck._blob(w, 1, bias, "bias = num_output")
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


@check("InnerProduct")
def _innerproduct(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
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
    ck._blob(w, 0, shape, "weights", (1, (n,), "bias") if p.bias_term else None)
    if p.bias_term:
        ck._blob(w, 1, (n,), "bias = num_output")
    return [None if x is None else (*x[:axis], n)]


@check("Pooling")
def _pooling(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    layer = w.layer
    p = _param(layer, "pooling_param")
    if int(p.pool) not in (0, 1):
        raise w.field("pooling_param.pool: STOCHASTIC pooling is not supported (it is "
                      "random at train time and a weighted average at test time in Caffe)")
    g = pool_geometry(layer, ck.prototxt)
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


@check("LRN")
def _lrn(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
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


@check("BatchNorm")
def _batchnorm(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    layer = w.layer
    p = _param(layer, "batch_norm_param")
    _finite_field(w, "batch_norm_param.eps", p.eps, positive=True)
    _finite_field(w, "batch_norm_param.moving_average_fraction", p.moving_average_fraction)
    if len(layer.blobs) != 3:
        raise w.blob(f"expected 3 blobs (mean, variance, scale factor), found "
                     f"{len(layer.blobs)}")
    x = ins[0]
    c = x[1] if x is not None and len(x) > 1 else layer.blobs[0].size
    ck._blob(w, 0, (c,), "mean = channels")
    ck._blob(w, 1, (c,), "variance = channels")
    ck._blob(w, 2, (1,), "moving-average scale factor")
    return [x]


def _scale_like(ck: _Checker, w: _Where, ins: list, section: str) -> Shape | None:
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


@check("Scale")
def _scale(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    layer = w.layer
    p = _param(layer, "scale_param")
    want = _scale_like(ck, w, ins, "scale_param")
    i = 0
    if len(layer.bottoms) == 1:
        if not layer.blobs:
            raise w.blob("missing blob 0 (scale) in the caffemodel")
        if want is not None:
            ck._blob(w, 0, want, "scale")
        i = 1
    if p.bias_term:
        if i >= len(layer.blobs):
            raise w.blob(f"missing blob {i} (bias) in the caffemodel")
        if want is not None:
            ck._blob(w, i, want, "bias")
        elif i and layer.blobs[i].shape != layer.blobs[0].shape:
            raise w.blob(f"blob {i} (bias) has shape {tuple(layer.blobs[i].shape)} but "
                         f"the scale has {tuple(layer.blobs[0].shape)}")
    return [ins[0]]


@check("Bias")
def _bias(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    layer = w.layer
    want = _scale_like(ck, w, ins, "bias_param")
    if len(layer.bottoms) == 1:
        if not layer.blobs:
            raise w.blob("missing blob 0 (bias) in the caffemodel")
        if want is not None:
            ck._blob(w, 0, want, "bias")
    return [ins[0]]


def _same(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    return [ins[0]] * len(w.layer.tops)


@check("ReLU")
def _relu(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    _finite_field(w, "relu_param.negative_slope", _param(w.layer, "relu_param")
                  .negative_slope)
    return [ins[0]]

_Sigmoid = _TanH = _Split = _same


@check("Dropout")
def _dropout(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    _finite_field(w, "dropout_param.dropout_ratio",
                  _param(w.layer, "dropout_param").dropout_ratio, below=1.0)
    return [ins[0]]


@check("Power")
def _power(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    p = _param(w.layer, "power_param")
    for name in ("power", "scale", "shift"):
        _finite_field(w, f"power_param.{name}", getattr(p, name))
    return [ins[0]]


@check("Eltwise")
def _eltwise(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
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


@check("Concat")
def _concat(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
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


@check("Slice")
def _slice(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
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


@check("Flatten")
def _flatten(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    p = _param(w.layer, "flatten_param")
    x = ins[0]
    if x is None:
        return [None]
    a = _axis(w, "flatten_param.axis", int(p.axis), len(x))
    e = _axis(w, "flatten_param.end_axis", int(p.end_axis), len(x))
    if e < a:
        raise w.field(f"flatten_param.end_axis {p.end_axis} is before axis {p.axis}")
    return [(*x[:a], math.prod(x[a:e + 1]), *x[e + 1:])]


@check("Reshape")
def _reshape(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
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


@check("Softmax")
def _softmax(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    x = ins[0]
    if x is not None:
        _axis(w, "softmax_param.axis", int(_param(w.layer, "softmax_param").axis), len(x))
    return [x]


def _labels_fit(ck: _Checker, w: _Where, ins: list, axis: int, section: str) -> None:
    scores, labels = ins
    if scores is None or labels is None:
        return
    a = _axis(w, f"{section}.axis", axis, len(scores))
    items = math.prod(scores[:a]) * math.prod(scores[a + 1:])
    if math.prod(labels) != items:
        raise w.field(f"label bottom {w.layer.bottoms[1]!r} has {math.prod(labels)} "
                      f"values for {items} predictions of {w.layer.bottoms[0]!r} "
                      f"{dims(scores)}")


@check("SoftmaxWithLoss")
def _softmaxwithloss(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    _labels_fit(ck, w, ins, int(_param(w.layer, "softmax_param").axis), "softmax_param")
    return [()]


@check("Accuracy")
def _accuracy(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    p = _param(w.layer, "accuracy_param")
    top_k = _int_field(w, "accuracy_param.top_k", p.top_k, 1)
    _labels_fit(ck, w, ins, int(p.axis), "accuracy_param")
    scores = ins[0]
    if scores is not None:
        classes = scores[int(p.axis) % len(scores)]
        if top_k > classes:
            raise w.field(f"accuracy_param.top_k {top_k} exceeds the {classes} classes")
    return [()]


@check("Euclidean")
def _euclidean(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    a, b = ins
    if a is not None and b is not None and a != b:
        raise w.field(f"bottoms have shapes {dims(a)} and {dims(b)}; they must be equal")
    return [a]


@check("PairEuclidean")
def _paireuclidean(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    if len(w.layer.tops) > 1 and len(w.layer.bottoms) < 2:
        raise w.field("the second (label_dif) top needs the label bottom")
    return [None] * len(w.layer.tops)  # batch halves: unknown at batch 1


def _data(ck: _Checker, w: _Where, ins: list) -> list[Shape | None]:
    return [None] * len(w.layer.tops)


for _t in DATA_TYPES - {"Input"}:
    CHECKS[_t] = _data
