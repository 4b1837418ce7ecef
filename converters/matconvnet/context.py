"""The per-conversion state the MatConvNet units' builders write to (the graph being built,
the model's params), and the block-value helpers they share."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..common import ConversionError, GraphBuilder
from .layout import MCNLayer, MCNModel

# MATLAB H x W x C x N dimension (1-based) -> PyTorch N x C x H x W axis.
MATLAB_DIM = {1: 2, 2: 3, 3: 1, 4: 0}


class Ctx:
    """Per-conversion state handed to each unit's ``build``."""

    def __init__(self, model: MCNModel, options: dict[str, Any] | None = None) -> None:
        self.model = model
        self.source = model.source_path
        self.b = GraphBuilder("matconvnet", self.source)
        #: conversion choices the units read (``bilinear_kernel``: "gpu" or "cpu")
        self.options = dict(options or {})

    def err(self, layer: MCNLayer, msg: str) -> ConversionError:
        return ConversionError(f"{self.source}: layer {layer.name!r} ({layer.type}): {msg}")

    def value(self, layer: MCNLayer, i: int, what: str) -> np.ndarray:
        if i >= len(layer.params):
            raise self.err(layer, f"needs a {what} parameter (params has {len(layer.params)})")
        name = layer.params[i]
        if name not in self.model.params:
            raise self.err(layer, f"parameter {name!r} ({what}) is not in the file")
        return np.asarray(self.model.params[name].value, dtype=np.float32)

    def param(self, layer: MCNLayer, i: int, array: np.ndarray) -> str:
        return self.b.param(layer.params[i], array, layer.name)

    def add(self, layer: MCNLayer, op: str, attrs: dict[str, Any] | None = None,
            params: dict[str, str] | None = None) -> None:
        self.b.add(layer.name, layer.type, op, layer.inputs, layer.outputs, attrs, params)


def flat_ints(v: Any) -> list[int]:
    """The integers the spec check accepted (a scalar, a list, 1-element arrays), flat."""
    items = list(v) if isinstance(v, list | tuple) else np.asarray(v).reshape(-1).tolist()
    return [int(np.asarray(x).reshape(-1)[0]) for x in items]


def pair(v: Any, default: int) -> list[int]:
    """``stride``/``dilate``/``poolSize``: 1 value repeated, or the first 2."""
    if v is None:
        return [default, default]
    v = flat_ints(v)
    return v * 2 if len(v) == 1 else v[:2]


def pad4(v: Any) -> list[int]:
    """``pad``: [top bottom left right] from 1 or 4 values."""
    if v is None:
        return [0, 0, 0, 0]
    v = flat_ints(v)
    if len(v) == 1:
        return v * 4
    if len(v) == 4:
        return v
    raise ValueError(f"pad must have 1 or 4 values, got {v}")
