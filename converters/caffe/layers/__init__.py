"""One unit per Caffe layer type, by family; importing this package registers them all in
:data:`porting.converters.caffe.registry.UNITS`. A new family module is imported here."""

from ..registry import UNITS
from . import (
    activation,
    combine,
    conv,
    data,
    deconv,
    losses,
    normalization,
    pointwise,
    pooling,
    reduce,
    reorder,
    resample,
    standardize,
    tensor,
)
from .conv import conv_geometry
from .data import DATA_TYPES
from .pooling import pool_geometry

__all__ = ["DATA_TYPES", "UNITS", "activation", "combine", "conv", "conv_geometry", "data",
           "deconv", "losses", "normalization", "pointwise", "pool_geometry", "pooling",
           "reduce", "reorder", "resample", "standardize", "tensor"]
