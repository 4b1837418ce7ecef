"""One unit per ``dagnn.*`` class, by family; importing this package registers them all in
:data:`porting.converters.matconvnet.registry.UNITS`. A new family module is imported here."""

from ..registry import UNITS
from . import activation, conv, losses, normalization, pooling, tensor

__all__ = ["UNITS", "activation", "conv", "losses", "normalization", "pooling", "tensor"]
