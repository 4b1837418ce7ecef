"""The SimpleNN layout (``net.layers`` cell array, also pre-beta17 ``filters``/``biases``), read
as ``vl_simplenn_tidy`` + ``dagnn.DagNN.fromSimpleNN`` would see it: a chain of layers whose
vars are the layer names. Each layer's type is read by the unit of its ``dagnn.*`` class
(``Unit.simplenn`` / ``Unit.from_simplenn``), found through the registry."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..matfile import MatCell, MatFormatError, MatStruct, to_python
from .layers import UNITS
from .layout import MCNLayer, MCNParam, Parts, canon_dict, describe, new_name
from .registry import simplenn_index
from .simplenn_layer import FromSimpleNN, SimpleNNLayer

#: SimpleNN ``type`` -> (its ``dagnn.*`` class, the unit that reads it), from the units'
#: ``simplenn`` declarations (:class:`~.registry.Unit`).
SIMPLENN_UNITS = simplenn_index(UNITS)


class SimpleNNLayout:
    """The SimpleNN part of the model reader (its ``fail``, ``_str``, ``_meta`` and
    ``_vector`` come from the reader)."""


    def _simplenn(self, root: dict[str, Any], prefix: str) -> tuple[Parts, bool]:
        cells = root["layers"].tolist_matlab()
        legacy = "meta" not in root and ("normalization" in root or "classes" in root)
        layers: list[MCNLayer] = []
        params: dict[str, MCNParam] = {}
        vars_ = ["input"]
        previous = "input"
        for i, cell in enumerate(cells, start=1):
            where = f"{prefix}layers{{{i}}}"
            if not isinstance(cell, MatStruct) or cell.size != 1:
                raise self.fail(f"{where} should be a 1x1 struct, got {describe(cell)}")
            element = cell.scalar()
            kind = self._str(element, "type", where)
            name = element.get("name", "")
            if isinstance(name, np.ndarray) and name.size == 0:
                name = ""
            if not isinstance(name, str):
                raise self.fail(f"{where}.name should be a string, got {describe(name)}")
            name = name or f"layer{i}"  # fromSimpleNN's name for an unnamed layer
            where = f"layer {name!r} ({where})"
            if any(la.name == name for la in layers):
                raise self.fail(f"{where}: duplicate layer name")
            legacy = legacy or "filters" in element or "biases" in element
            try:
                type_, read = self._simplenn_layer(kind, name, element, where)
            except ValueError as exc:
                if isinstance(exc, MatFormatError):
                    raise
                raise self.fail(f"{where}: field {exc}") from None
            inputs = [previous]
            if read.label:  # vl_simplenn reads the layer's ``class``: the caller's labels
                inputs.append(new_name(vars_, "label"))
            for p in read.params:
                params[p.name] = p
            layers.append(MCNLayer(
                name=name, type=type_, inputs=inputs, outputs=[name],
                params=[p.name for p in read.params], block=read.block,
            ))
            for v in inputs + [name]:
                if v not in vars_:
                    vars_.append(v)
            previous = name
        if "meta" in root:
            meta = self._meta(root["meta"], f"{prefix}meta")
        else:
            fields = {k: root[k] for k in ("normalization", "classes") if k in root}
            meta = self._meta(MatStruct(list(fields), (1, 1), [fields]),
                              f"{prefix}normalization/classes")
        return (layers, params, vars_, meta), legacy

    def _weights(self, element: dict[str, Any], where: str) -> list[Any]:
        if "weights" in element:
            weights = element["weights"]
            if isinstance(weights, MatCell):
                return weights.tolist_matlab()
            if isinstance(weights, np.ndarray) and weights.size == 0:
                return []
            raise self.fail(f"{where}.weights should be a cell array, got {describe(weights)}")
        if "filters" in element:  # pre-beta17 names, as vl_simplenn_tidy maps them
            return [element["filters"], element.get("biases", np.zeros((0, 0)))]
        return []

    def _simplenn_layer(
        self, kind: str, name: str, element: dict[str, Any], where: str
    ) -> tuple[str, FromSimpleNN]:
        """The layer's ``dagnn.*`` class and what its unit reads from the struct; an unknown
        type is kept as ``simplenn.<type>`` with its settings, for the converter to judge."""
        type_, unit = SIMPLENN_UNITS.get(kind, (f"simplenn.{kind}", None))
        settings = dict(unit.simplenn_defaults) if unit is not None else {}
        settings.update({k: to_python(v) for k, v in element.items()
                         if k not in ("name", "type", "weights", "filters", "biases",
                                      "learningRate", "weightDecay", "precious")})
        weights = self._weights(element, where)
        for k, w in enumerate(weights):
            if not isinstance(w, np.ndarray) or w.dtype.kind not in "biuf":
                raise self.fail(f"{where}.weights{{{k + 1}}} should be a numeric array, got "
                                f"{describe(w)}")
        rates = self._vector(element, "learningRate", where)
        decays = self._vector(element, "weightDecay", where)
        if unit is None:
            return type_, FromSimpleNN([], canon_dict(settings))
        return type_, unit.from_simplenn(SimpleNNLayer(
            name=name, kind=kind, element=element, settings=settings, weights=weights,
            rates=rates, decays=decays, where=where, path=self.path))
