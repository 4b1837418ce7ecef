"""The graph ops, each one registered unit: its forward (adapting attrs and params to
:mod:`porting.layers`) next to its schema (arity, attribute checks, parameter slots, shape
rule, fast-path properties), which :mod:`porting.graph` runs and
:mod:`porting.checkpoint_schema` checks.

Families: :mod:`.conv`, :mod:`.pooling`, :mod:`.normalization`, :mod:`.activation`,
:mod:`.elementwise`, :mod:`.tensor`, :mod:`.losses`; the registry in :mod:`.registry`, the
attribute checks in :mod:`.checks`.
"""

from . import activation, conv, elementwise, losses, normalization, pooling, tensor  # noqa: F401
from .registry import OPS, GraphError, Op, register_module_op, register_op

__all__ = ["OPS", "GraphError", "Op", "register_module_op", "register_op"]
