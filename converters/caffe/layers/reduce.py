"""``Reduction`` and ``ArgMax``: semantics in :mod:`porting.layers.reduce` (every axis from
``axis`` reduced; the top-k ranked as Caffe's ``std::greater`` on (value, index) pairs)."""

from __future__ import annotations

import math

from ..context import Ctx
from ..fields import Shape, Where, axis_field, finite_field, int_field, param
from ..net import CaffeLayer
from ..registry import Unit, register

_OPS = {1: "SUM", 2: "ASUM", 3: "SUMSQ", 4: "MEAN"}


@register("Reduction")
class Reduction(Unit):
    """Caffe's ``ReductionLayer`` (SUM, ASUM, SUMSQ, MEAN over the axes from ``axis``, times
    ``coeff``) -> graph op ``reduction``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        p = param(w.layer, "reduction_param")
        if int(p.operation) not in _OPS:
            raise w.field(f"reduction_param.operation {p.operation} is not SUM, ASUM, SUMSQ "
                          "or MEAN")
        finite_field(w, "reduction_param.coeff", p.coeff)
        x = ins[0]
        if x is None:
            return [None]
        axis = axis_field(w, "reduction_param.axis", int(p.axis), len(x))
        return [tuple(x[:axis])]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "reduction_param")
        ctx.add(layer, "reduction", {"operation": _OPS[int(p.operation)], "axis": int(p.axis),
                                     "coeff": float(p.coeff)})


@register("ArgMax")
class ArgMax(Unit):
    """Caffe's ``ArgMaxLayer`` (``top_k``, ``out_max_val``, ``axis``) -> graph op
    ``argmax``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        p = param(w.layer, "argmax_param")
        k = int_field(w, "argmax_param.top_k", p.top_k, 1)
        x = ins[0]
        if x is None:
            return [None]
        if p.HasField("axis"):
            axis = axis_field(w, "argmax_param.axis", int(p.axis), len(x))
            if k > x[axis]:
                raise w.field(f"argmax_param.top_k {k} exceeds axis {axis} of size {x[axis]}")
            return [(*x[:axis], k, *x[axis + 1:])]
        if k > math.prod(x[1:]):
            raise w.field(f"argmax_param.top_k {k} exceeds the {math.prod(x[1:])} values per "
                          "item")
        return [(x[0], 2 if p.out_max_val else 1, k) + (1,) * (max(len(x), 3) - 3)]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "argmax_param")
        attrs = {"top_k": int(p.top_k), "out_max_val": bool(p.out_max_val)}
        if p.HasField("axis"):
            attrs["axis"] = int(p.axis)
        ctx.add(layer, "argmax", attrs)
