"""Layers that combine inputs: ``dagnn.Sum``, ``dagnn.Concat`` and the authors'
``dagnn.Square`` (semantics in :mod:`porting.layers.square`)."""

from __future__ import annotations

from ...limits import dims, integer, show
from ..context import MATLAB_DIM, Ctx
from ..fields import Shape, Where
from ..layout import MCNLayer
from ..registry import Unit, register


def _equal(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
    layer = w.layer
    known = [(v, s) for v, s in zip(layer.inputs, ins, strict=True) if s is not None]
    for v, s in known[1:]:
        if s != known[0][1]:
            raise w.fail(f"input {v!r} has size {dims(s)} but {known[0][0]!r} "
                         f"has {dims(known[0][1])} (N x C x H x W)")
    return [known[0][1] if known and len(known) == len(ins) else None]


@register("dagnn.Sum")
class Sum(Unit):
    """``dagnn.Sum`` of inputs of equal size -> graph op ``sum``."""

    inputs = (1, None)
    check = staticmethod(_equal)

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        ctx.add(layer, "sum")


@register("dagnn.Square")
class Square(Unit):
    """The authors' ``dagnn.Square``: ``(x1 - x2).^2`` of the two streams -> graph op
    ``square_diff``."""

    inputs = (2, 2)
    check = staticmethod(_equal)

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        if len(layer.inputs) != 2:
            raise ctx.err(layer, f"Square takes 2 inputs, got {len(layer.inputs)}")
        ctx.add(layer, "square_diff")


@register("dagnn.Concat")
class Concat(Unit):
    """``dagnn.Concat`` along MATLAB's ``dim`` (1..4 of H x W x C x N) -> op ``concat``."""

    inputs = (1, None)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        dim = integer(layer.block.get("dim", 3), 1)
        if dim is None or dim > 4:
            raise w.fail(f"block.dim must be 1, 2, 3 or 4, got "
                         f"{show(layer.block.get('dim'))}")
        if any(s is None or len(s) != 4 for s in ins):
            return [None]
        axis = MATLAB_DIM[dim]
        first = ins[0]
        for v, s in zip(layer.inputs[1:], ins[1:], strict=True):
            if any(a != b for k, (a, b) in enumerate(zip(s, first, strict=True))
                   if k != axis):
                raise w.fail(f"input {v!r} has size {dims(s)}, which does not fit "
                             f"{layer.inputs[0]!r} {dims(first)} outside dim {dim}")
        return [(*first[:axis], sum(s[axis] for s in ins), *first[axis + 1:])]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        dim = int(layer.block.get("dim", 3))
        if dim not in MATLAB_DIM:
            raise ctx.err(layer, f"Concat dim {dim} is not one of 1..4")
        ctx.add(layer, "concat", {"axis": MATLAB_DIM[dim]})
