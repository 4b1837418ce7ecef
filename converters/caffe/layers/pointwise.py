"""Caffe's element-wise layers beyond ReLU/Sigmoid/TanH: ``PReLU``, ``ELU``, ``AbsVal``,
``BNLL``, ``Exp``, ``Log`` and ``Threshold``; semantics in :mod:`porting.layers.activations`
(BVLC's formulas, Exp/Log with ``base = -1`` meaning e)."""

from __future__ import annotations

from ...limits import dims
from ..context import Ctx
from ..fields import Shape, Where, finite_field, param
from ..net import CaffeLayer
from ..registry import Unit, register


def _slope_shape(w: Where, ins: list[Shape | None]) -> tuple[int, ...]:
    """PReLU's blob: one value (``channel_shared``; Caffe writes it 0-D) or one per channel."""
    layer = w.layer
    shared = bool(param(layer, "prelu_param").channel_shared)
    if not layer.blobs:
        raise w.blob("missing blob 0 (slopes) in the caffemodel")
    blob = layer.blobs[0]
    if shared:
        if blob.size != 1 or blob.ndim > 1:
            raise w.blob(f"blob 0 (slope) has shape {tuple(blob.shape)}, channel_shared needs "
                         "one value")
        return tuple(blob.shape)
    x = ins[0]
    if x is not None and len(x) < 2:
        raise w.field(f"bottom {layer.bottoms[0]!r} has shape {dims(x)}, PReLU needs >= 2 "
                      "axes")
    c = x[1] if x is not None else blob.size
    w.expect_blob(0, (c,), "slopes = channels")
    return (c,)


@register("PReLU")
class PReLU(Unit):
    """Caffe's ``PReLULayer`` (``channel_shared``) -> graph op ``prelu``."""

    blobs = 1  # the slopes

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        _slope_shape(w, ins)
        return [ins[0]]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        if not layer.blobs:
            raise ctx.err(layer, "missing blob 0 (slopes) in the caffemodel")
        shape = tuple(layer.blobs[0].shape)
        ctx.add(layer, "prelu", {}, {"weight": ctx.blob(layer, 0, shape, "slopes")})


@register("ELU")
class ELU(Unit):
    """Caffe's ``ELULayer`` (``alpha``) -> graph op ``elu``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        finite_field(w, "elu_param.alpha", param(w.layer, "elu_param").alpha)
        return [ins[0]]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "elu", {"alpha": float(param(layer, "elu_param").alpha)})


@register("AbsVal")
class AbsVal(Unit):
    """Caffe's ``AbsValLayer`` -> graph op ``absval``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        return [ins[0]]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "absval")


@register("BNLL")
class BNLL(Unit):
    """Caffe's ``BNLLLayer`` (``log(1 + e^x)``) -> graph op ``bnll``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        return [ins[0]]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "bnll")


def _exp_log_attrs(w: Where, section: str, log: bool) -> dict[str, float]:
    p = param(w.layer, section)
    base = finite_field(w, f"{section}.base", p.base)
    if base != -1 and (base <= 0 or (log and base == 1)):
        need = "-1 (e) or > 0 and != 1" if log else "-1 (e) or > 0"
        raise w.field(f"{section}.base must be {need}, got {base}")
    return {"base": base, "scale": finite_field(w, f"{section}.scale", p.scale),
            "shift": finite_field(w, f"{section}.shift", p.shift)}


@register("Exp")
class Exp(Unit):
    """Caffe's ``ExpLayer``: ``base ^ (shift + scale * x)`` -> graph op ``caffe_exp``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        _exp_log_attrs(w, "exp_param", log=False)
        return [ins[0]]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "caffe_exp", _exp_log_attrs(Where(layer, ctx.source), "exp_param", False))


@register("Log")
class Log(Unit):
    """Caffe's ``LogLayer``: ``log_base(shift + scale * x)`` -> graph op ``caffe_log``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        _exp_log_attrs(w, "log_param", log=True)
        return [ins[0]]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "caffe_log", _exp_log_attrs(Where(layer, ctx.source), "log_param", True))


@register("Threshold")
class Threshold(Unit):
    """Caffe's ``ThresholdLayer``: 1 where ``x > threshold``, else 0 -> op ``threshold``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        finite_field(w, "threshold_param.threshold", param(w.layer, "threshold_param").threshold)
        return [ins[0]]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "threshold",
                {"threshold": float(param(layer, "threshold_param").threshold)})
