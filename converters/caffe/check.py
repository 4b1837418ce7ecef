"""The second half of the Caffe reader's boundary: check a loaded :class:`CaffeNet` as Caffe's
``LayerSetUp``/``Reshape`` would, before the converter computes anything.

For every layer, through its unit in :data:`~porting.converters.caffe.registry.UNITS`: the
number of bottoms and tops its type takes, the ``*_param`` fields that must be integers
(kernel, stride >= 1, pad >= 0, dilation >= 1, group dividing the channels, num_output,
local_size...) or finite floats, blob shapes against the layer's fields and its bottom's
shape; here: ``loss_weight`` and non-finite weights. Shapes are propagated from the declared
``Input`` shapes (batch included, as the dry run feeds), so geometry that does not fit the
input is refused here and the dry run's peak memory is estimated before it allocates. Errors are
:class:`CaffeFormatError` lines naming the file and the layer with Caffe's field names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..limits import (
    DEFAULT_MAX_MEMORY_GB,
    MemoryPlan,
    check_memory,
    dims,
    nonfinite_count,
)
from .fields import Shape, Where, allowed, finite_field
from .layers import UNITS
from .reader import CaffeFormatError, CaffeLayer, CaffeNet


@dataclass
class NetCheck:
    """What the check learnt: blob shapes (None where unknown), the dry run's estimated peak
    (None when input shapes are not all declared) and the non-finite weights allowed."""

    shapes: dict[str, Shape | None] = field(default_factory=dict)
    peak_bytes: int | None = None
    nonfinite: list[str] = field(default_factory=list)


class _Checker:
    def __init__(self, net: CaffeNet, prototxt: str, caffemodel: str | None,
                 allow_nonfinite: bool) -> None:
        self.net, self.prototxt, self.caffemodel = net, prototxt, caffemodel
        self.allow_nonfinite = allow_nonfinite
        self.result = NetCheck()
        self.plan = MemoryPlan()
        self.version: dict[str, int] = {}  # blob -> writes so far (in-place layers)

    def shape(self, blob: str) -> Shape | None:
        return self.result.shapes.get(blob)

    def var(self, blob: str) -> str:
        return f"{blob}#{self.version.get(blob, 0)}"

    def run(self) -> NetCheck:
        for layer in self.net.layers:
            self.layer(layer)
        return self.result

    def layer(self, layer: CaffeLayer) -> None:
        w = Where(layer, self.prototxt, self.caffemodel, self.net)
        unit = UNITS.functions.get(layer.type)  # an unknown type is refused by the builder
        if unit is not None:
            for what, n, (lo, hi) in (("bottom", len(layer.bottoms), unit.bottoms),
                                      ("top", len(layer.tops), unit.tops)):
                if n < lo or (hi is not None and n > hi):
                    plural = "" if (hi or lo) == 1 else "s"
                    raise w.field(f"takes {allowed(lo, hi)} {what}{plural}, got {n}")
        for i, value in enumerate(layer.loss_weight):
            finite_field(w, f"loss_weight[{i}]", value)
        self.weights(w)
        ins = [self.shape(b) for b in layer.bottoms]
        outs = unit.check(w, ins) if unit is not None else None
        if outs is None or len(outs) != len(layer.tops):
            outs = [None] * len(layer.tops)
        inputs = [self.var(b) for b in layer.bottoms]
        for top, s in zip(layer.tops, outs, strict=True):
            self.result.shapes[top] = s
        produced = []
        for top, s in zip(layer.tops, outs, strict=True):
            self.version[top] = self.version.get(top, 0) + 1
            produced.append((self.var(top), math.prod(s) if s is not None else 0))
        self.plan.add(layer.name, inputs, produced)

    def weights(self, w: Where) -> None:
        for i, blob in enumerate(w.layer.blobs):
            bad = nonfinite_count(blob)
            if bad:
                what = f"layer {w.layer.name!r} ({w.layer.type}) blob {i}"
                if not self.allow_nonfinite:
                    raise w.blob(f"blob {i} has {bad} non-finite value(s) (NaN/Inf) of "
                                 f"{blob.size}; --allow-nonfinite converts anyway")
                self.result.nonfinite.append(f"{what}: {bad} of {blob.size}")


def check_net(net: CaffeNet, prototxt: str, caffemodel: str | None = None, *,
              allow_nonfinite: bool = False,
              max_memory_gb: float = DEFAULT_MAX_MEMORY_GB) -> NetCheck:
    """Check every layer of ``net`` (see the module docstring); raise CaffeFormatError."""
    checker = _Checker(net, prototxt, caffemodel, allow_nonfinite)
    result = checker.run()
    declared = dict(net.inputs)
    if declared and all(declared.values()):  # the dry run runs only then
        peak, where = checker.plan.peak_bytes([])  # the Input layers produce the feeds
        result.peak_bytes = peak
        shown = ", ".join(f"input {t!r} {dims(result.shapes.get(t) or ())}" for t in declared)
        refusal = check_memory(peak, where, max_memory_gb, prototxt, shown)
        if refusal:
            raise CaffeFormatError(refusal)
    return result


def nonfinite_note(result: NetCheck) -> str | None:
    """The stderr note for ``--allow-nonfinite`` when some weights were not finite."""
    if not result.nonfinite:
        return None
    return ("--allow-nonfinite: converted despite non-finite weights in "
            + "; ".join(result.nonfinite[:4]) + (" ..." if len(result.nonfinite) > 4 else ""))


__all__ = ["NetCheck", "check_net", "nonfinite_note"]
