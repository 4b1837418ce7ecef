"""The second half of the MatConvNet reader's boundary: check an :class:`MCNModel` as
``vl_nnconv``/``vl_nnpool``/DagNN would, before the converter computes anything.

For every layer of a known ``dagnn.*`` class, through its unit in
:data:`~porting.converters.matconvnet.registry.UNITS`: the number of inputs and outputs, block
properties that must be integers (``pad`` >= 0 with 1 or 4 values, ``stride``/``dilate``/
``poolSize`` >= 1 with 1 or 2, ``size``...) or finite numbers (``leak``, ``rate``,
``epsilon``, LRN ``param``), parameter sizes (filters H x W x C/groups x K, biases K,
BatchNorm mult/bias K and moments K x 2), ``meta.normalization`` (``imageSize``,
``averageImage``) and non-finite parameters. Var shapes are propagated from the input size
the dry run uses (1 x 3 x H x W), so geometry that does not fit is refused here and the dry
run's peak memory is estimated before it allocates. Errors are :class:`MatFormatError` lines
naming the file and the layer, param or field in MatConvNet's words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..limits import (
    DEFAULT_MAX_MEMORY_GB,
    MemoryPlan,
    check_memory,
    integers,
    nonfinite_count,
    show,
)
from ..matfile import MatFormatError
from .fields import Shape, Where, allowed, fail
from .layers import UNITS
from .layout import MCNModel


@dataclass
class ModelCheck:
    """What the check learnt: var shapes (None where unknown), the dry run's input size and
    estimated peak, and the non-finite parameters allowed by ``--allow-nonfinite``."""

    input_size: tuple[int, int]
    shapes: dict[str, Shape | None] = field(default_factory=dict)
    peak_bytes: int = 0
    nonfinite: list[str] = field(default_factory=list)


class _Checker:
    def __init__(self, model: MCNModel, allow_nonfinite: bool) -> None:
        self.model = model
        self.allow_nonfinite = allow_nonfinite
        self.plan = MemoryPlan()
        self.shapes: dict[str, Shape | None] = {}
        self.nonfinite: list[str] = []

    def run(self, inputs: dict[str, Shape]) -> None:
        self.shapes.update(inputs)
        self.check_params()
        for layer in self.model.layers:
            w = Where(self.model, layer)
            w.check_block()
            unit = UNITS.functions.get(layer.type)  # an unknown class: refused by the builder
            if unit is not None:
                for what, n, (lo, hi) in (("input", len(layer.inputs), unit.inputs),
                                          ("output", len(layer.outputs), unit.outputs)):
                    if n < lo or (hi is not None and n > hi):
                        plural = "" if (hi or lo) == 1 else "s"
                        raise w.fail(f"takes {allowed(lo, hi)} {what}{plural}, got {n}")
            ins = [self.shapes.get(v) for v in layer.inputs]
            outs = unit.check(w, ins) if unit is not None else None
            if outs is None or len(outs) != len(layer.outputs):
                outs = [None] * len(layer.outputs)
            for v, s in zip(layer.outputs, outs, strict=True):
                self.shapes[v] = s
            self.plan.add(layer.name, layer.inputs, [
                (v, math.prod(s) if s is not None else 0)
                for v, s in zip(layer.outputs, outs, strict=True)])

    def check_params(self) -> None:
        for name, p in self.model.params.items():
            bad = nonfinite_count(p.value)
            if not bad:
                continue
            if not self.allow_nonfinite:
                raise fail(self.model, None, f"param {name!r} has {bad} non-finite value(s) "
                                             f"(NaN/Inf) of {p.value.size}; --allow-nonfinite "
                                             "converts anyway")
            self.nonfinite.append(f"param {name!r}: {bad} of {p.value.size}")


def input_size(model: MCNModel) -> tuple[int, int]:
    """The dry run's input size: 224 x 224 for the paper's two-stream net, else
    ``meta.normalization.imageSize(1:2)`` (checked), else 224 x 224."""
    types = {layer.type for layer in model.layers}
    names = {layer.name for layer in model.layers}
    norm = model.meta.get("normalization") or {}
    if not isinstance(norm, dict):
        raise MatFormatError(f"{model.source_path}: meta.normalization should be a struct, got "
                             f"{show(norm)}")
    size = norm.get("imageSize")
    if size is not None:
        got = integers(size, (2, 3, 4), 1)
        if got is None:
            raise MatFormatError(f"{model.source_path}: meta.normalization.imageSize must be "
                                 f"[H W] or [H W C] or [H W C N] positive integers, got "
                                 f"{show(size)}")
    avg = norm.get("averageImage")
    if isinstance(avg, np.ndarray) and nonfinite_count(avg):
        raise MatFormatError(f"{model.source_path}: meta.normalization.averageImage has "
                             "non-finite values (NaN/Inf)")
    if "dagnn.Square" in types and "fc9" in names:
        return (224, 224)
    return (got[0], got[1]) if size is not None else (224, 224)


def dry_run_shape(layer_type: str, index: int, h: int, w: int) -> Shape:
    """The dry run's size for a network input that a ``layer_type`` layer reads at input
    ``index``: an image 1 x 3 x H x W unless its unit says otherwise (:attr:`Unit.feeds`)."""
    unit = UNITS.functions.get(layer_type)
    return unit.feeds.get(index, (1, 3, h, w)) if unit is not None else (1, 3, h, w)


def check_model(model: MCNModel, *, allow_nonfinite: bool = False,
                max_memory_gb: float = DEFAULT_MAX_MEMORY_GB,
                label_vars: set[str] | None = None) -> ModelCheck:
    """Check every layer of ``model`` (see the module docstring); raise MatFormatError."""
    h, w = input_size(model)
    produced = {v for layer in model.layers for v in layer.outputs}
    loss_labels = {layer.inputs[1] for layer in model.layers
                   if layer.type == "dagnn.Loss" and len(layer.inputs) > 1}
    labels = loss_labels if label_vars is None else label_vars
    feeds: dict[str, Shape] = {}
    for layer in model.layers:
        for i, v in enumerate(layer.inputs):
            if v not in produced and v not in feeds:
                feeds[v] = (1,) if v in labels else dry_run_shape(layer.type, i, h, w)
    checker = _Checker(model, allow_nonfinite)
    checker.run(feeds)
    result = ModelCheck((h, w), checker.shapes, nonfinite=checker.nonfinite)
    result.peak_bytes, where = checker.plan.peak_bytes(
        (v, math.prod(s)) for v, s in feeds.items())
    refusal = check_memory(result.peak_bytes, where, max_memory_gb, model.source_path,
                           f"input {h}x{w}")
    if refusal:
        raise MatFormatError(refusal)
    return result


def nonfinite_note(result: ModelCheck) -> str | None:
    """The stderr note for ``--allow-nonfinite`` when some parameters were not finite."""
    if not result.nonfinite:
        return None
    return ("--allow-nonfinite: converted despite non-finite values in "
            + "; ".join(result.nonfinite[:4]) + (" ..." if len(result.nonfinite) > 4 else ""))


__all__ = ["ModelCheck", "check_model", "dry_run_shape", "input_size", "nonfinite_note"]
