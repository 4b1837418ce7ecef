"""Shape and routing ops: ``identity`` (Caffe ``Split``), ``concat``, ``slice``, ``flatten``,
``reshape`` and ``softmax``."""

from __future__ import annotations

import torch

from .checks import FieldError, axis, integer, ints
from .registry import register_op


@register_op("identity", attrs={"n_out": lambda f, v: integer(f, v, 1, 4096)})
def identity(x, a, p, training):
    return [x[0] for _ in range(max(1, a.get("n_out", 1)))]


@register_op("softmax", attrs={"axis": axis})
def softmax(x, a, p, training):
    return [torch.softmax(x[0], dim=a.get("axis", 1))]


def _concat_shape(a, shapes, p):
    return [(sum(s[0] for s in shapes),) + tuple(shapes[0][1:])]


@register_op("concat", arity=(1, None), attrs={"axis": axis}, shape=_concat_shape)
def concat(x, a, p, training):
    return [torch.cat(x, dim=a.get("axis", 1))]


def _slice_check(where, layer, p):
    attrs = layer.get("attrs", {})
    if not attrs.get("slice_points") and "n_out" not in attrs:
        raise FieldError(f"{where}.attrs", "a slice needs slice_points or n_out")


@register_op("slice", attrs={"axis": axis,
                             "slice_points": lambda f, v: ints(f, v, tuple(range(0, 4097)), 1,
                                                               1 << 30),
                             "n_out": lambda f, v: integer(f, v, 1, 4096)},
             check=_slice_check)
def slice_(x, a, p, training):
    ax, points = a.get("axis", 1), list(a.get("slice_points", []))
    n = x[0].shape[ax]
    if not points:
        k = a["n_out"]
        points = [n // k * i for i in range(1, k)]
    bounds = [0] + points + [n]
    return [x[0].narrow(ax, s, e - s) for s, e in zip(bounds[:-1], bounds[1:], strict=True)]


@register_op("flatten", attrs={"axis": axis, "end_axis": axis})
def flatten(x, a, p, training):
    return [torch.flatten(x[0], a.get("axis", 1), a.get("end_axis", -1))]


@register_op("reshape", required=("shape",),
             attrs={"shape": lambda f, v: ints(f, v, tuple(range(1, 9)), -1, 1 << 30)})
def reshape(x, a, p, training):
    shape = [x[0].shape[i] if d == 0 else d for i, d in enumerate(a["shape"])]
    return [x[0].reshape(shape)]
