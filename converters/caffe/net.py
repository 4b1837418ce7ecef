"""What the Caffe reader reads a net into: :class:`CaffeNet` (one phase's layers, inputs and
load diagnostics) of :class:`CaffeLayer` (a layer as Caffe would run it, with its weights).
The layer units check and build these; :mod:`.reader` fills them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from google.protobuf.message import Message

__all__ = ["CaffeLayer", "CaffeNet"]


@dataclass(frozen=True, eq=False)
class CaffeLayer:
    """One layer as Caffe would run it, with its weights.

    ``params`` maps each *_param field that is set (``"convolution_param"``, ...) to its
    protobuf message; ``proto`` is the whole ``LayerParameter`` (blobs removed) for
    reading defaults of unset fields. ``blobs`` are float32 arrays in Caffe order, with
    the file's shape: ``blob_legacy[i]`` marks blobs stored with the deprecated 4-D
    num/channels/height/width dims (V1 models: an InnerProduct weight is 1x1xOxI),
    which Caffe matches against the layer's shape with ``blob_matches``.
    ``param_names[i]`` is ``ParamSpec.name`` of blob i (``None`` when unnamed); layers
    sharing a name share that parameter. ``loss_weight`` is the raw field (empty: Caffe
    uses 1 for the first top of ``*Loss`` layers, 0 otherwise).
    """

    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: Mapping[str, Message]
    proto: Message
    blobs: tuple[np.ndarray, ...] = ()
    blob_legacy: tuple[bool, ...] = ()
    param_names: tuple[str | None, ...] = ()
    include: tuple[Message, ...] = ()
    exclude: tuple[Message, ...] = ()
    loss_weight: tuple[float, ...] = ()

    def blob_matches(self, index: int, shape: Sequence[int]) -> bool:
        """Caffe's ``Blob::ShapeEquals``: does blob ``index`` fit a blob of ``shape``?

        Legacy 4-D blobs match any shape of at most 4 axes that equals them once padded
        with leading 1s (bias 1x1x1xO fits (O,)).
        """
        blob, want = self.blobs[index], tuple(int(d) for d in shape)
        if self.blob_legacy[index]:
            return len(want) <= 4 and (1,) * (4 - len(want)) + want == blob.shape
        return blob.shape == want


@dataclass(frozen=True, eq=False)
class CaffeNet:
    """A Caffe net for one phase: its inputs, its layers in order, and load diagnostics.

    ``inputs`` maps each ``Input`` layer top to its shape (``None`` when the prototxt
    leaves it to be set at run time); the Input layers themselves stay in ``layers``.
    ``param_owners`` maps each ``ParamSpec`` name to the (layer, blob index) that owns
    it (the first layer using the name). ``unused_weights`` lists caffemodel layers with
    blobs that match no layer of this phase; ``warnings`` repeats the warnings issued;
    ``unknown_fields`` has one note per prototxt field the schema does not know (also
    warnings: the converter refuses them unless told to ignore them).
    """

    name: str
    phase: str
    inputs: Mapping[str, tuple[int, ...] | None]
    layers: tuple[CaffeLayer, ...]
    param_owners: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    unused_weights: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    unknown_fields: tuple[str, ...] = ()
    definition: Message | None = field(default=None, repr=False, compare=False)

    def layer(self, name: str) -> CaffeLayer:
        """The layer called ``name`` (KeyError if absent)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)
