"""Element-wise layers of one bottom: ``ReLU``, ``Sigmoid``, ``TanH``, ``Power``, ``Dropout``
and ``Softmax`` (the graph ops compute them with torch's functions, as Caffe does)."""

from __future__ import annotations

from ..context import Ctx
from ..fields import Shape, Where, axis_field, finite_field, param
from ..net import CaffeLayer
from ..registry import Unit, register


def _same(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
    """The top has the bottom's shape."""
    return [ins[0]]


@register("ReLU")
class ReLU(Unit):
    """Caffe's ``ReLULayer`` (leaky with ``negative_slope``) -> graph op ``relu``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        finite_field(w, "relu_param.negative_slope",
                     param(w.layer, "relu_param").negative_slope)
        return [ins[0]]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "relu", {"negative_slope": float(param(layer, "relu_param")
                                                        .negative_slope)})


@register("Sigmoid")
class Sigmoid(Unit):
    """Caffe's ``SigmoidLayer`` -> graph op ``sigmoid`` (no field)."""

    check = staticmethod(_same)

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "sigmoid")


@register("TanH")
class TanH(Unit):
    """Caffe's ``TanHLayer`` -> graph op ``tanh`` (no field)."""

    check = staticmethod(_same)

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "tanh")


@register("Power")
class Power(Unit):
    """Caffe's ``PowerLayer``: ``(shift + scale * x) ^ power`` -> graph op ``power``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        p = param(w.layer, "power_param")
        for name in ("power", "scale", "shift"):
            finite_field(w, f"power_param.{name}", getattr(p, name))
        return [ins[0]]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "power_param")
        ctx.add(layer, "power", {"power": float(p.power), "scale": float(p.scale),
                                 "shift": float(p.shift)})


@register("Dropout")
class Dropout(Unit):
    """Caffe's ``DropoutLayer`` (inverted dropout at train time) -> graph op ``dropout``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        finite_field(w, "dropout_param.dropout_ratio",
                     param(w.layer, "dropout_param").dropout_ratio, below=1.0)
        return [ins[0]]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "dropout", {"rate": float(param(layer, "dropout_param").dropout_ratio)})


@register("Softmax")
class Softmax(Unit):
    """Caffe's ``SoftmaxLayer`` along ``softmax_param.axis`` -> graph op ``softmax``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        x = ins[0]
        if x is not None:
            axis_field(w, "softmax_param.axis", int(param(w.layer, "softmax_param").axis),
                       len(x))
        return [x]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "softmax", {"axis": int(param(layer, "softmax_param").axis)})
