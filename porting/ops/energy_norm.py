"""Ops that rescale a map by its energy: ``noffset`` (``vl_nnnoffset``, ``dagnn.NormOffset``)
and ``spnorm`` (``vl_nnspnorm``, ``dagnn.SpatialNorm``)."""

from __future__ import annotations

from porting.layers.norm_offset import norm_offset
from porting.layers.spatial_norm import MatConvNetSpatialNorm

from .checks import FieldError, numbers
from .registry import register_module_op, register_op


def _spnorm_param(field, v):
    numbers(field, v, 4)
    if any(not float(s).is_integer() or s < 1 for s in v[:2]):
        raise FieldError(field, f"the window [PH PW] must be positive integers, got {v[:2]}")


@register_op("noffset", required=("param",), attrs={"param": lambda f, v: numbers(f, v, 2)},
             fresh=True)
def noffset(x, a, p, training):
    k, power = a["param"]
    return [norm_offset(x[0], k, power)]


register_module_op("spnorm", MatConvNetSpatialNorm.from_attrs, required=("param",),
                   attrs={"param": _spnorm_param}, fresh=True)
