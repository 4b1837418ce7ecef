"""The Caffe layer-type registry: one :class:`Unit` per Caffe ``type``, registered by its type
name, holding the type's arity, its blob count, its parameter check with its shape rule, and
its graph builder side by side. :mod:`.reader` (blob counts), :mod:`.check` and
:mod:`.converter` find every type here."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message

from ..common import Registry
from .context import Ctx
from .fields import Shape, Where
from .net import CaffeLayer

#: Caffe layer type -> its unit (``UNITS.get`` names the supported types on a miss).
UNITS = Registry("caffe")

#: Caffe's training-time losses and outputs that have no unit (the converter refuses them)
#: but for which Caffe creates no blobs: the reader still refuses a caffemodel giving them some.
BLOBLESS_WITHOUT_UNIT = frozenset({
    "ContrastiveLoss", "EuclideanLoss", "HDF5Output", "HingeLoss", "InfogainLoss",
    "MultinomialLogisticLoss", "SigmoidCrossEntropyLoss", "Silence"})


class Unit:
    """One Caffe layer type (subclass it, decorate the subclass with :func:`register`).

    ``bottoms``/``tops``: (min, max) counts, ``None`` unbounded (Caffe's
    ExactNum/Min/MaxBottomBlobs, narrowed where the converter supports less). The layer's
    semantics (PyTorch forward and ONNX form) live in :mod:`porting.layers`; the graph op
    that :meth:`build` names runs them.
    """

    bottoms: tuple[int, int | None] = (1, 1)
    tops: tuple[int, int | None] = (1, 1)
    #: How many blobs Caffe creates for a layer of this type: none unless the unit says so
    #: (override :meth:`blob_count` where the layer's fields decide it). The reader holds a
    #: caffemodel's blobs and the layer's param specs to it.
    blobs: int = 0

    @classmethod
    def blob_count(cls, layer: Message) -> int | None:
        """How many blobs Caffe creates for ``layer`` (its ``LayerParameter``); ``None``
        where not even its fields decide it (then the reader checks no count)."""
        return cls.blobs

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


def expected_blobs(units: Registry, layer: Message) -> int | None:
    """How many blobs Caffe creates for ``layer`` by the unit of its type in ``units``
    (:meth:`Unit.blob_count`), 0 for :data:`BLOBLESS_WITHOUT_UNIT`; ``None`` where unknown."""
    unit = units.functions.get(layer.type)
    if unit is None:
        return 0 if layer.type in BLOBLESS_WITHOUT_UNIT else None
    return unit.blob_count(layer)  # type: ignore[attr-defined]
