"""One unit per ``dagnn.*`` class, by family; importing this package registers them all in
:data:`porting.converters.matconvnet.registry.UNITS`. A new family module is imported here."""

from ..registry import UNITS
from . import (
    activation,
    conv,
    conv_transpose,
    distance,
    energy_norm,
    losses,
    normalization,
    pooling,
    spatial,
    tensor,
)

__all__ = ["UNITS", "activation", "conv", "conv_transpose", "distance", "energy_norm", "losses",
           "normalization", "pooling", "spatial", "tensor"]
