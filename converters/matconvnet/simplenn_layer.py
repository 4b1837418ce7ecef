"""What a unit's ``from_simplenn`` reads one SimpleNN layer struct with (:class:`SimpleNNLayer`:
its fields with ``vl_simplenn_tidy``'s defaults, its weights, learning rates and decays) and
what it returns (:class:`FromSimpleNN`: the layer's params and block, as
``dagnn.DagNN.fromSimpleNN`` would write them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..matfile import MatFormatError
from .layout import MCNParam, canon_dict, column, four_d


class FromSimpleNN(NamedTuple):
    """A SimpleNN layer as its ``dagnn.*`` class: params (in the class's order), block
    properties (in :func:`.layout.canonical` form) and whether the layer reads a second input,
    the caller's labels (``vl_simplenn`` passes ``l.class``), as ``fromSimpleNN`` adds one."""

    params: list[MCNParam]
    block: dict[str, Any]
    label: bool = False


@dataclass(frozen=True)
class SimpleNNLayer:
    """One SimpleNN layer struct being read (``where`` names it for messages)."""

    name: str
    kind: str
    #: the struct's fields as loaded (MATLAB values)
    element: dict[str, Any]
    #: its settings as Python values over the unit's ``simplenn_defaults`` (no name, type,
    #: weights, filters, biases, learningRate, weightDecay, precious)
    settings: dict[str, Any]
    #: ``weights`` (or pre-beta17 ``filters``/``biases``), each a numeric array
    weights: list[np.ndarray]
    rates: list[float]
    decays: list[float]
    where: str
    path: str

    def fail(self, message: str) -> MatFormatError:
        """``<file>: <message>``, as the model reader's own errors."""
        return MatFormatError(f"{self.path}: {message}")

    def param(self, suffix: str, k: int, value: np.ndarray,
              decay: float | None = None) -> MCNParam:
        """Param ``<name><suffix>`` holding weight ``k``'s value, with the layer's
        ``learningRate(k)``/``weightDecay(k)`` (1 where the file has none)."""
        lr = self.rates[k] if k < len(self.rates) else 1.0
        wd = decay if decay is not None else (
            self.decays[k] if k < len(self.decays) else 1.0)
        return MCNParam(self.name + suffix, value, lr, wd)

    def keep(self, *keys: str) -> dict[str, Any]:
        """The settings among ``keys`` that the layer has (or has a default for)."""
        return {k: self.settings[k] for k in keys if k in self.settings}

    def filters(self, keys: tuple[str, ...]) -> FromSimpleNN:
        """``conv``/``convt``: filters ``<name>f`` (trailing singleton dims restored), the
        bias ``<name>b`` when not empty, block ``size``/``hasBias`` and the settings ``keys``."""
        if not self.weights or self.weights[0].size == 0:
            raise self.fail(f"{self.where}: {self.kind} layer without filters")
        filters = four_d(self.weights[0])
        bias = self.weights[1] if len(self.weights) > 1 else np.zeros((0, 0), np.float32)
        has_bias = bias.size > 0
        params = [self.param("f", 0, filters)]
        if has_bias:
            params.append(self.param("b", 1, column(bias)))
        block: dict[str, Any] = {"size": list(filters.shape), "hasBias": has_bias}
        block.update(self.keep(*keys))
        return FromSimpleNN(params, canon_dict(block))
