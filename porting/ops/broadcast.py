"""``mcn_scale``: MatConvNet's ``dagnn.Scale``, ``bsxfun(@times, x, s)`` then ``bsxfun(@plus, .,
b)``, where the scale and the bias are each a parameter or an input var (the inputs come first:
``horzcat(inputs, params)``). A squeeze-and-excitation gate is an input ``1 x 1 x C x N``."""

from __future__ import annotations

import torch

from .checks import FieldError, boolean
from .registry import GraphError, register_op

_ANY = (1, 2, 3, 4)


def _check(where, layer, p):
    has_bias = layer.get("attrs", {}).get("has_bias", True)
    args = len(layer["inputs"]) + len(p)
    if args != 2 + has_bias:
        raise FieldError(f"{where}.inputs", f"a Scale {'with' if has_bias else 'without'} "
                         f"bias takes {2 + has_bias} inputs and parameters together, got {args}")


def _bsx(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``b`` viewed to broadcast against ``a`` as ``bsxfun`` does (trailing dims padded)."""
    if b.dim() < a.dim():
        b = b.reshape(tuple(b.shape) + (1,) * (a.dim() - b.dim()))
    for da, db in zip(a.shape, b.shape, strict=True):
        if db not in (1, da) and da != 1:
            raise GraphError(f"cannot broadcast a {tuple(b.shape)} operand against "
                             f"{tuple(a.shape)} (bsxfun needs equal sizes or 1)")
    return b


@register_op("mcn_scale", arity=(1, 3), attrs={"has_bias": boolean},
             slots={"weight": (False, _ANY), "bias": (False, _ANY)}, check=_check, fresh=True)
def mcn_scale(x, a, p, training):
    args = list(x) + [p[s] for s in ("weight", "bias") if s in p]
    y = args[0] * _bsx(args[0], args[1])
    if a.get("has_bias", True):
        y = y + _bsx(y, args[2])
    return [y]
