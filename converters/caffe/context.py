"""The per-conversion state the Caffe units' builders write to: the graph being built, the
blob -> var map of in-place layers, and the blob parameters."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..common import ConversionError, GraphBuilder
from .net import CaffeLayer, CaffeNet


class Ctx:
    """Per-conversion state handed to each unit's ``build``."""

    def __init__(self, net: CaffeNet, source: str, phase: str) -> None:
        self.net = net
        self.source = source
        self.phase = phase
        self.b = GraphBuilder("caffe", source)
        self.current: dict[str, str] = {}  # blob -> var holding its current value
        writers = Counter(t for layer in net.layers for t in layer.tops)
        self.remaining = dict(writers)
        self.used: set[str] = set()  # var names given so far

    def err(self, layer: CaffeLayer, msg: str) -> ConversionError:
        return ConversionError(f"{self.source}: layer {layer.name!r} ({layer.type}): {msg}")

    def ins(self, layer: CaffeLayer) -> list[str]:
        try:
            return [self.current[b] for b in layer.bottoms]
        except KeyError as exc:
            raise self.err(layer, f"bottom blob {exc.args[0]!r} is not produced by any "
                                  "earlier layer or input") from None

    def outs(self, layer: CaffeLayer) -> list[str]:
        names = []
        for top in layer.tops:
            self.remaining[top] -= 1
            name = top if self.remaining[top] == 0 else f"{top}@{layer.name}"
            k = 1
            while name in self.used:  # layers that share a name, in place on one blob
                k += 1
                name = f"{top}@{layer.name}#{k}"
            self.used.add(name)
            names.append(name)
            self.current[top] = name
        return names

    def blob(self, layer: CaffeLayer, i: int, shape: tuple[int, ...], what: str) -> str:
        """Register blob ``i`` (checked against ``shape``) and return its parameter key."""
        if i >= len(layer.blobs):
            raise self.err(layer, f"missing blob {i} ({what}) in the caffemodel")
        if not layer.blob_matches(i, shape):
            raise self.err(layer, f"blob {i} ({what}) has shape {tuple(layer.blobs[i].shape)}, "
                                  f"expected {tuple(shape)}")
        name = layer.param_names[i] if i < len(layer.param_names) else None
        key = name or f"{layer.name}/{i}"
        return self.b.param(key.replace(".", "_"), layer.blobs[i].reshape(shape), layer.name)

    def add(self, layer: CaffeLayer, op: str, attrs: dict[str, Any] | None = None,
            params: dict[str, str] | None = None, inputs: list[str] | None = None) -> None:
        ins = self.ins(layer) if inputs is None else inputs
        self.b.add(layer.name, layer.type, op, ins, self.outs(layer), attrs, params)
