"""One unit per Caffe layer type, by family; importing this package registers them all in
:data:`porting.converters.caffe.registry.UNITS`. A new family module is imported here."""

from ..registry import UNITS
from . import activation, conv, data, losses, normalization, pooling, tensor
from .conv import conv_geometry
from .data import DATA_TYPES
from .pooling import pool_geometry

__all__ = ["DATA_TYPES", "UNITS", "activation", "conv", "conv_geometry", "data", "losses",
           "normalization", "pool_geometry", "pooling", "tensor"]
