"""Element-wise layers of one input: ``dagnn.ReLU``, ``dagnn.Sigmoid``, ``dagnn.SoftMax`` and
``dagnn.DropOut``, and their SimpleNN types (the graph ops compute them with torch's functions,
as ``vl_nn*`` do)."""

from __future__ import annotations

from ..context import Ctx
from ..fields import Shape, Where
from ..layout import MCNLayer, canon_dict
from ..registry import Unit, register
from ..simplenn_layer import FromSimpleNN, SimpleNNLayer


def _same(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
    return [ins[0]]


def _no_settings(s: SimpleNNLayer) -> FromSimpleNN:
    return FromSimpleNN([], {})


@register("dagnn.ReLU")
class ReLU(Unit):
    """``dagnn.ReLU`` (``leak``) -> graph op ``relu``."""

    simplenn = ("relu",)
    simplenn_defaults = {"leak": 0.0}

    @staticmethod
    def from_simplenn(s: SimpleNNLayer) -> FromSimpleNN:
        return FromSimpleNN([], canon_dict({"leak": s.settings["leak"]}))

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

    simplenn = ("sigmoid",)
    check = staticmethod(_same)
    from_simplenn = staticmethod(_no_settings)

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        ctx.add(layer, "sigmoid")


@register("dagnn.SoftMax")
class SoftMax(Unit):
    """``dagnn.SoftMax`` over the channels -> graph op ``softmax``."""

    simplenn = ("softmax",)
    check = staticmethod(_same)
    from_simplenn = staticmethod(_no_settings)

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        ctx.add(layer, "softmax", {"axis": 1})


@register("dagnn.DropOut")
class DropOut(Unit):
    """``dagnn.DropOut`` (``rate``; identity at test time) -> graph op ``dropout``."""

    simplenn = ("dropout",)
    simplenn_defaults = {"rate": 0.5}

    @staticmethod
    def from_simplenn(s: SimpleNNLayer) -> FromSimpleNN:
        return FromSimpleNN([], canon_dict({"rate": s.settings["rate"]}))

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        w.number("rate", 0.5, below=1.0)
        return [ins[0]]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        ctx.add(layer, "dropout", {"rate": float(layer.block.get("rate", 0.5))})
