"""The MatConvNet layer-class registry: one :class:`Unit` per ``dagnn.*`` class, registered by
its class name, holding the class's arity, its block/param check with its shape rule, and its
graph builder side by side, and the SimpleNN types it reads (``simplenn`` and
``from_simplenn``: a SimpleNN layer arrives as its ``dagnn.*`` class, as
``dagnn.DagNN.fromSimpleNN`` maps it). :mod:`.check`, :mod:`.converter` and the SimpleNN
reader (:mod:`.simplenn`, through :func:`simplenn_index`) find every class here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..common import Registry
from .context import Ctx
from .fields import Shape, Where
from .layout import MCNLayer
from .simplenn_layer import FromSimpleNN, SimpleNNLayer

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
    #: The SimpleNN ``type`` strings this class reads (:meth:`from_simplenn`); none by default.
    simplenn: tuple[str, ...] = ()
    #: ``vl_simplenn_tidy``'s defaults for the fields an old SimpleNN layer may lack.
    simplenn_defaults: dict[str, Any] = {}

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None] | None:
        """Check the block and params as ``vl_nn*`` would against the inputs' sizes
        (N x C x H x W, ``None`` where unknown); return the outputs' sizes."""
        return None

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        """Add the layer to ``ctx``'s graph (it has been checked)."""
        raise NotImplementedError

    @staticmethod
    def from_simplenn(s: SimpleNNLayer) -> FromSimpleNN:
        """The params and block of a SimpleNN layer of one of the :attr:`simplenn` types, as
        ``fromSimpleNN`` writes them (raise ``s.fail(...)`` for a struct it cannot read)."""
        raise NotImplementedError


def register(*classes: str) -> Callable[[type[Unit]], type[Unit]]:
    """Register a :class:`Unit` subclass as the unit of the ``dagnn.*`` ``classes``."""
    return UNITS.register(*classes)  # type: ignore[return-value]


def simplenn_index(units: Registry) -> dict[str, tuple[str, type[Unit]]]:
    """SimpleNN ``type`` -> (its ``dagnn.*`` class, that class's unit), from the units'
    :attr:`Unit.simplenn` declarations; a type two classes declare is a programming error."""
    index: dict[str, tuple[str, type[Unit]]] = {}
    for name, unit in units.functions.items():
        for kind in getattr(unit, "simplenn", ()):
            if kind in index and index[kind][1] is not unit:
                raise RuntimeError(f"SimpleNN type {kind!r} is declared by both "
                                   f"{index[kind][0]} and {name}")
            index.setdefault(kind, (name, unit))
    return index
