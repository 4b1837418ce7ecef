"""The MatConvNet layer-class registry: one :class:`Unit` per ``dagnn.*`` class, registered by
its class name, holding the class's arity, its block/param check with its shape rule, and its
graph builder side by side. :mod:`.check` and :mod:`.converter` find every class here
(SimpleNN layers arrive as their ``dagnn.*`` class, as ``dagnn.DagNN.fromSimpleNN`` maps
them: :data:`.layout.SIMPLENN_TYPES`)."""

from __future__ import annotations

from collections.abc import Callable

from ..common import Registry
from .context import Ctx
from .fields import Shape, Where
from .layout import MCNLayer

#: ``dagnn.*`` class -> its unit (``UNITS.get`` names the supported classes on a miss).
UNITS = Registry("matconvnet")


class Unit:
    """One ``dagnn.*`` class (subclass it, decorate the subclass with :func:`register`).

    ``inputs``/``outputs``: (min, max) counts, ``None`` unbounded. The layer's semantics
    (PyTorch forward, ONNX form) live in :mod:`porting.layers`; the graph op that
    :meth:`build` names runs them.
    """

    inputs: tuple[int, int | None] = (1, 1)
    outputs: tuple[int, int | None] = (1, 1)
    #: The dry run's size (N x C x H x W, N = 1) for a network input read at these input
    #: positions, where it is not an image: a transform, a list of regions, a target.
    feeds: dict[int, Shape] = {}

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None] | None:
        """Check the block and params as ``vl_nn*`` would against the inputs' sizes
        (N x C x H x W, ``None`` where unknown); return the outputs' sizes."""
        return None

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        """Add the layer to ``ctx``'s graph (it has been checked)."""
        raise NotImplementedError


def register(*classes: str) -> Callable[[type[Unit]], type[Unit]]:
    """Register a :class:`Unit` subclass as the unit of the ``dagnn.*`` ``classes``."""
    return UNITS.register(*classes)  # type: ignore[return-value]
