"""The Caffe layer-type registry: one :class:`Unit` per Caffe ``type``, registered by its type
name, holding the type's arity, its parameter check with its shape rule, and its graph
builder side by side. :mod:`.check` and :mod:`.converter` find every type here."""

from __future__ import annotations

from collections.abc import Callable

from ..common import Registry
from .context import Ctx
from .fields import Shape, Where
from .reader import CaffeLayer

#: Caffe layer type -> its unit (``UNITS.get`` names the supported types on a miss).
UNITS = Registry("caffe")


class Unit:
    """One Caffe layer type (subclass it, decorate the subclass with :func:`register`).

    ``bottoms``/``tops``: (min, max) counts, ``None`` unbounded (Caffe's
    ExactNum/Min/MaxBottomBlobs, narrowed where the converter supports less). The layer's
    semantics (PyTorch forward and ONNX form) live in :mod:`porting.layers`; the graph op
    that :meth:`build` names runs them.
    """

    bottoms: tuple[int, int | None] = (1, 1)
    tops: tuple[int, int | None] = (1, 1)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None] | None:
        """Check the ``*_param`` fields and blobs (as ``LayerSetUp``/``Reshape`` would)
        against the bottoms' shapes (``None`` where unknown); return the tops' shapes.
        The default checks nothing and leaves the tops' shapes unknown."""
        return None

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        """Add the layer to ``ctx``'s graph (it has been checked)."""
        raise NotImplementedError


def register(*types: str) -> Callable[[type[Unit]], type[Unit]]:
    """Register a :class:`Unit` subclass as the unit of the Caffe layer ``types``."""
    return UNITS.register(*types)  # type: ignore[return-value]
