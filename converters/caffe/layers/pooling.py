"""``Pooling``: semantics in :mod:`porting.layers.pooling_caffe` (CEIL output size, the last
window clipped to start inside the padded input, AVE divided by the clipped window)."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from ...limits import dims
from ..context import Ctx
from ..fields import Geometry, Shape, Where, hw, param
from ..net import CaffeLayer
from ..registry import Unit, register


def pool_geometry(layer: CaffeLayer, prototxt: str = "<prototxt>") -> Geometry | None:
    """The checked geometry of a Pooling layer (``None`` for global pooling)."""
    w = Where(layer, prototxt, None)
    p = param(layer, "pooling_param")
    if p.global_pooling:
        if p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w"):
            raise w.field("pooling_param: with global_pooling the kernel size cannot be given")
        pad = hw(w, p, "pooling_param", "pad", 0, 0)
        stride = hw(w, p, "pooling_param", "stride", 1, 1)
        if pad != (0, 0) or stride != (1, 1):
            raise w.field("pooling_param: with global_pooling only pad 0 and stride 1 are "
                          f"allowed, got pad {list(pad)} stride {list(stride)}")  # type: ignore
        return None
    kernel = hw(w, p, "pooling_param", "kernel", None, 1)
    if kernel is None:
        raise w.field("pooling_param has no kernel size (kernel_size or kernel_h/kernel_w)")
    pad = hw(w, p, "pooling_param", "pad", 0, 0)
    stride = hw(w, p, "pooling_param", "stride", 1, 1)
    assert pad is not None and stride is not None
    for axis, k, q in (("h", kernel[0], pad[0]), ("w", kernel[1], pad[1])):
        if q >= k:  # Caffe: CHECK_LT(pad_h_, kernel_h_)
            raise w.field(f"pooling_param: pad ({q}) must be smaller than the kernel ({k}) "
                          f"along {axis}")
    return Geometry(kernel, pad, stride)


def ceil_rounding(w: Where, p: Message) -> bool:
    """CEIL (True) or FLOOR output size: BVLC's ``round_mode``, or the forks' ``ceil_mode``
    (false = FLOOR); both given must agree."""
    ceil = int(p.round_mode) == 0
    if p.HasField("ceil_mode"):
        if p.HasField("round_mode") and bool(p.ceil_mode) != ceil:
            raise w.field(f"pooling_param: ceil_mode {str(p.ceil_mode).lower()} and round_mode "
                          f"{'CEIL' if ceil else 'FLOOR'} disagree")
        ceil = bool(p.ceil_mode)
    return ceil


def _pooled(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@register("Pooling")
class Pooling(Unit):
    """Caffe's ``PoolingLayer`` (MAX, AVE; global; round_mode, the forks' ceil_mode) -> graph
    op ``caffe_pool``; MAX with a second top (the mask) -> ``caffe_pool_mask``; STOCHASTIC
    (test time: the activation-weighted average) -> ``caffe_stochastic_pool``."""

    tops = (1, 2)  # Caffe: a MAX pooling may write its argmax mask as a second top

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        p = param(layer, "pooling_param")
        g = pool_geometry(layer, w.prototxt)
        if len(layer.tops) == 2 and int(p.pool) != 0:
            raise w.field("a second top (the mask) needs pooling_param.pool MAX")
        if int(p.pool) == 2 and g is not None and g.pad != (0, 0):
            raise w.field("pooling_param: STOCHASTIC pooling takes no pad (Caffe implements "
                          "padding only for MAX and AVE)")
        x = ins[0]
        n = len(layer.tops)  # the mask has the pooled shape
        if x is None:
            return [None] * n
        if len(x) != 4:
            raise w.field(f"bottom {layer.bottoms[0]!r} has shape {dims(x)}, Pooling needs "
                          "N x C x H x W")
        if g is None:
            return [(x[0], x[1], 1, 1)] * n
        size = []
        for axis, (s, k, q, st) in enumerate(zip(x[2:], g.kernel, g.pad, g.stride,
                                                 strict=True)):
            name = "hw"[axis]
            if s + 2 * q < k:
                raise w.field(f"pooling_param: kernel_{name} {k} is larger than the bottom "
                              f"{s} + 2 x pad {q} along {name} (input {dims(x)})")
            size.append(_pooled(s, k, st, q, ceil_rounding(w, p)))
        return [(x[0], x[1], *size)] * n

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "pooling_param")
        method = {0: "max", 1: "ave", 2: "stochastic"}[int(p.pool)]
        if method == "stochastic" and ctx.phase == "TRAIN":
            raise ctx.err(layer, "STOCHASTIC pooling samples at random in the TRAIN phase; "
                                 "only its test-time form (the activation-weighted average) "
                                 "is implemented")
        attrs: dict[str, Any] = {"method": method, "global_pooling": bool(p.global_pooling),
                                 "ceil_mode": ceil_rounding(Where(layer, ctx.source), p)}
        g = pool_geometry(layer, ctx.source)
        if g is not None:
            attrs.update(kernel=list(g.kernel), pad=list(g.pad), stride=list(g.stride))
        if method == "stochastic":
            del attrs["method"]
            attrs.pop("pad", None)
            ctx.add(layer, "caffe_stochastic_pool", attrs)
        else:
            ctx.add(layer, "caffe_pool_mask" if len(layer.tops) == 2 else "caffe_pool", attrs)
