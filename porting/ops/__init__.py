"""The graph ops, each one registered unit: its forward (adapting attrs and params to
:mod:`porting.layers`) next to its schema (arity, attribute checks, parameter slots, shape
rule, fast-path properties), which :mod:`porting.graph` runs and
:mod:`porting.checkpoint_schema` checks.

Families: :mod:`.conv`, :mod:`.pooling`, :mod:`.normalization`, :mod:`.activation`,
:mod:`.elementwise`, :mod:`.tensor`, :mod:`.losses`; MatConvNet's :mod:`.conv_transpose`,
:mod:`.broadcast` (``dagnn.Scale``), :mod:`.energy_norm`, :mod:`.distance`, :mod:`.spatial`;
the registry in :mod:`.registry`, the attribute checks in :mod:`.checks`.
"""

from . import (  # noqa: F401
    activation,
    broadcast,
    conv,
    conv_transpose,
    distance,
    elementwise,
    energy_norm,
    losses,
    normalization,
    pooling,
    spatial,
    tensor,
)
from .registry import OPS, GraphError, Op, register_module_op, register_op

__all__ = ["OPS", "GraphError", "Op", "register_module_op", "register_op"]
