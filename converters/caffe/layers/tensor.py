"""Layers that combine, split or reshape blobs: ``Eltwise``, ``Concat``, ``Slice``, ``Split``,
``Flatten`` and ``Reshape`` (with ``axis``/``num_axes``)."""

from __future__ import annotations

import math

from porting.layers.shapes import reshape_shape

from ...limits import INT_MAX, dims
from ..context import Ctx
from ..fields import Shape, Where, axis_field, finite_field, param
from ..net import CaffeLayer
from ..registry import Unit, register


@register("Eltwise")
class Eltwise(Unit):
    """Caffe's ``EltwiseLayer`` (PROD, SUM with ``coeff``, MAX) -> graph op ``eltwise``."""

    bottoms = (2, None)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        p = param(layer, "eltwise_param")
        for i, c in enumerate(p.coeff):
            finite_field(w, f"eltwise_param.coeff[{i}]", c)
        if len(p.coeff) and (int(p.operation) != 1 or len(p.coeff) != len(layer.bottoms)):
            raise w.field("eltwise_param.coeff needs the SUM operation and one value per "
                          "bottom")
        known = [(b, s) for b, s in zip(layer.bottoms, ins, strict=True) if s is not None]
        for b, s in known[1:]:
            if s != known[0][1]:
                raise w.field(f"bottom {b!r} has shape {dims(s)} but {known[0][0]!r} has "
                              f"{dims(known[0][1])}; Eltwise needs equal shapes")
        return [known[0][1] if len(known) == len(ins) else None]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "eltwise_param")
        op = {0: "PROD", 1: "SUM", 2: "MAX"}[int(p.operation)]
        coeff = [float(c) for c in p.coeff]
        if coeff and (op != "SUM" or len(coeff) != len(layer.bottoms)):
            raise ctx.err(layer, "Eltwise coeff needs the SUM operation and one value per "
                                 "bottom")
        ctx.add(layer, "eltwise", {"operation": op, "coeff": coeff})


def _concat_axis(p) -> int:
    """``concat_dim`` (legacy) wins over ``axis`` when given."""
    return int(p.concat_dim) if p.HasField("concat_dim") else int(p.axis)


@register("Concat")
class Concat(Unit):
    """Caffe's ``ConcatLayer`` along ``axis`` (or legacy ``concat_dim``) -> op ``concat``."""

    bottoms = (1, None)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        p = param(layer, "concat_param")
        if any(s is None for s in ins):
            return [None]
        first = ins[0]
        axis = axis_field(w, "concat_param.axis", _concat_axis(p), len(first))
        for b, s in zip(layer.bottoms[1:], ins[1:], strict=True):
            if len(s) != len(first) or any(a != c for k, (a, c) in enumerate(
                    zip(s, first, strict=True)) if k != axis):
                raise w.field(f"bottom {b!r} has shape {dims(s)}, which does not fit "
                              f"{layer.bottoms[0]!r} {dims(first)} outside axis {axis}")
        return [(*first[:axis], sum(s[axis] for s in ins), *first[axis + 1:])]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "concat", {"axis": _concat_axis(param(layer, "concat_param"))})


def _slice_axis(p) -> int:
    """``slice_dim`` (legacy) wins over ``axis`` when given."""
    return int(p.slice_dim) if p.HasField("slice_dim") else int(p.axis)


@register("Slice")
class Slice(Unit):
    """Caffe's ``SliceLayer`` (``slice_point`` or equal parts) -> graph op ``slice``."""

    tops = (1, None)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        p = param(layer, "slice_param")
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
        axis = axis_field(w, "slice_param.axis", _slice_axis(p), len(x))
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

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "slice_param")
        ctx.add(layer, "slice", {"axis": _slice_axis(p),
                                 "slice_points": [int(s) for s in p.slice_point],
                                 "n_out": len(layer.tops)})


@register("Split")
class Split(Unit):
    """Caffe's ``SplitLayer``: the bottom to every top -> graph op ``identity``."""

    tops = (1, None)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        return [ins[0]] * len(w.layer.tops)

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "identity", {"n_out": len(layer.tops)})


@register("Flatten")
class Flatten(Unit):
    """Caffe's ``FlattenLayer`` (``axis`` .. ``end_axis``) -> graph op ``flatten``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        p = param(w.layer, "flatten_param")
        x = ins[0]
        if x is None:
            return [None]
        a = axis_field(w, "flatten_param.axis", int(p.axis), len(x))
        e = axis_field(w, "flatten_param.end_axis", int(p.end_axis), len(x))
        if e < a:
            raise w.field(f"flatten_param.end_axis {p.end_axis} is before axis {p.axis}")
        return [(*x[:a], math.prod(x[a:e + 1]), *x[e + 1:])]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "flatten_param")
        ctx.add(layer, "flatten", {"axis": int(p.axis), "end_axis": int(p.end_axis)})


@register("Reshape")
class Reshape(Unit):
    """Caffe's ``ReshapeLayer`` (:func:`porting.layers.shapes.reshape_shape`: ``dims`` replace
    the axes ``[axis, axis + num_axes)``, 0 copies a dim, one -1 inferred) -> op ``reshape``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        p = param(w.layer, "reshape_param")
        want = [int(d) for d in p.shape.dim]
        if sum(d == -1 for d in want) > 1 or any(d < -1 or d > INT_MAX for d in want):
            raise w.field(f"reshape_param.shape {want}: dims must be >= 0 or one -1")
        if int(p.num_axes) < -1:
            raise w.field(f"reshape_param.num_axes must be >= -1, got {p.num_axes}")
        x = ins[0]
        if x is None:
            return [None]
        try:
            out = reshape_shape(x, want, int(p.axis), int(p.num_axes))
        except ValueError as exc:
            raise w.field(f"reshape_param: {exc} (bottom {dims(x)})") from None
        return [tuple(out)]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "reshape_param")
        ctx.add(layer, "reshape", {"shape": [int(d) for d in p.shape.dim], "axis": int(p.axis),
                                   "num_axes": int(p.num_axes)})
