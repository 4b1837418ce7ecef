"""Element-wise layers of one input: ``dagnn.ReLU``, ``dagnn.Sigmoid``, ``dagnn.SoftMax`` and
``dagnn.DropOut`` (the graph ops compute them with torch's functions, as ``vl_nn*`` do)."""

from __future__ import annotations

from ..context import Ctx
from ..fields import Shape, Where
from ..layout import MCNLayer
from ..registry import Unit, register


def _same(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
    return [ins[0]]


@register("dagnn.ReLU")
class ReLU(Unit):
    """``dagnn.ReLU`` (``leak``) -> graph op ``relu``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        w.number("leak", 0.0)
        return [ins[0]]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        ctx.add(layer, "relu", {"negative_slope": float(layer.block.get("leak", 0.0) or 0.0)})


@register("dagnn.Sigmoid")
class Sigmoid(Unit):
    """``dagnn.Sigmoid`` -> graph op ``sigmoid``."""

    check = staticmethod(_same)

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        ctx.add(layer, "sigmoid")


@register("dagnn.SoftMax")
class SoftMax(Unit):
    """``dagnn.SoftMax`` over the channels -> graph op ``softmax``."""

    check = staticmethod(_same)

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        ctx.add(layer, "softmax", {"axis": 1})


@register("dagnn.DropOut")
class DropOut(Unit):
    """``dagnn.DropOut`` (``rate``; identity at test time) -> graph op ``dropout``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        w.number("rate", 0.5, below=1.0)
        return [ins[0]]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        ctx.add(layer, "dropout", {"rate": float(layer.block.get("rate", 0.5))})
