"""Ops over several same-shaped inputs: Caffe ``Eltwise`` (SUM with coefficients, PROD,
MAX), MatConvNet's ``dagnn.Sum``, the paper's ``Square`` of a difference and SENet's
``Axpy``."""

from __future__ import annotations

import torch

from porting.layers import square_diff
from porting.layers.axpy import axpy as axpy_forward

from .checks import choice, numbers
from .registry import GraphError, register_op


@register_op("eltwise", arity=(1, None),
             attrs={"operation": lambda f, v: choice(f, v, ("SUM", "PROD", "MAX")),
                    "coeff": lambda f, v: numbers(f, v)}, inplace=True, fresh=True)
def eltwise(x, a, p, training):
    op = a.get("operation", "SUM")
    if op == "SUM":
        coeff = a.get("coeff") or [1.0] * len(x)
        if (a.get("_inplace") and len(x) == 2 and coeff == [1.0, 1.0]
                and not (torch.is_grad_enabled() and (x[0].requires_grad or x[1].requires_grad))):
            # the fast forms: a ResNet shortcut sum written over its private bottom
            k = a.get("_into", 0)
            return [x[k].add_(x[1 - k])]
        y = x[0] * coeff[0] if coeff[0] != 1 else x[0]
        for c, xi in zip(coeff[1:], x[1:], strict=True):
            y = y + (xi if c == 1 else c * xi)
        return [y]
    if op == "PROD":
        y = x[0]
        for xi in x[1:]:
            y = y * xi
        return [y]
    if op == "MAX":
        y = x[0]
        for xi in x[1:]:
            y = torch.maximum(y, xi)
        return [y]
    raise GraphError(f"unknown Eltwise operation {op!r}")


register_op("sum", arity=(1, None))(lambda x, a, p, t: [sum(x[1:], x[0])])
register_op("square_diff", arity=(2, 2))(lambda x, a, p, t: [square_diff(x[0], x[1])])
register_op("axpy", arity=(3, 3), shape=lambda a, shapes, p: [shapes[1]])(
    lambda x, a, p, t: [axpy_forward(x[0], x[1], x[2])])
