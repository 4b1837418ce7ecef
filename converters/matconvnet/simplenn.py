"""The SimpleNN layout (``net.layers`` cell array, also pre-beta17 ``filters``/``biases``), read
as ``vl_simplenn_tidy`` + ``dagnn.DagNN.fromSimpleNN`` would see it: a chain of layers whose
vars are the layer names."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..matfile import MatCell, MatFormatError, MatStruct, to_python
from .layout import (
    SIMPLENN_DEFAULTS,
    SIMPLENN_TYPES,
    MCNLayer,
    MCNParam,
    Parts,
    canon_dict,
    column,
    describe,
    four_d,
    new_name,
)


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
                layer_params, block = self._simplenn_layer(kind, name, element, where)
            except ValueError as exc:
                if isinstance(exc, MatFormatError):
                    raise
                raise self.fail(f"{where}: field {exc}") from None
            inputs = [previous]
            stored_target = any(p.name == f"{name}_class" for p in layer_params)
            if kind == "softmaxloss" or (kind == "pdist" and not stored_target):
                # vl_simplenn reads the layer's ``class``: the caller's labels or target
                inputs.append(new_name(vars_, "label"))
            for p in layer_params:
                params[p.name] = p
            layers.append(MCNLayer(
                name=name, type=SIMPLENN_TYPES.get(kind, f"simplenn.{kind}"), inputs=inputs,
                outputs=[name], params=[p.name for p in layer_params], block=block,
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
    ) -> tuple[list[MCNParam], dict[str, Any]]:
        settings = dict(SIMPLENN_DEFAULTS.get(kind, {}))
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

        def param(suffix: str, k: int, value: np.ndarray, decay: float | None = None) -> MCNParam:
            lr = rates[k] if k < len(rates) else 1.0
            wd = decay if decay is not None else (decays[k] if k < len(decays) else 1.0)
            return MCNParam(name + suffix, value, lr, wd)

        if kind in ("conv", "convt"):
            if not weights or weights[0].size == 0:
                raise self.fail(f"{where}: {kind} layer without filters")
            filters = four_d(weights[0])
            bias = weights[1] if len(weights) > 1 else np.zeros((0, 0), np.float32)
            has_bias = bias.size > 0
            params = [param("f", 0, filters)]
            if has_bias:
                params.append(param("b", 1, column(bias)))
            block: dict[str, Any] = {"size": list(filters.shape), "hasBias": has_bias}
            keys = ("pad", "stride", "dilate", "opts") if kind == "conv" else (
                "upsample", "crop", "numGroups", "opts")
            block.update({k: settings[k] for k in keys if k in settings})
            return params, canon_dict(block)
        if kind == "bnorm":
            if len(weights) < 2 or weights[0].size == 0 or weights[1].size == 0:
                raise self.fail(
                    f"{where}: bnorm layer without mult/bias weights; MatConvNet cannot run it "
                    "either (vl_simplenn_tidy fails on an empty weights cell, vl_nnbnorm "
                    "refuses empty MULTIPLIERS/BIASES). import-caffe.py's SimpleNN output "
                    "writes bnorm layers this way: import with --output-format dagnn")
            mult, bias = column(weights[0]), column(weights[1])
            # vl_simplenn_tidy's fill-in for BatchNorm layers saved without moments
            moments = weights[2] if len(weights) > 2 else np.zeros((mult.size, 2), np.float32)
            params = [param("m", 0, mult), param("b", 1, bias),
                      param("x", 2, moments, decay=0.0 if decays else None)]
            return params, canon_dict({k: settings[k] for k in ("epsilon",) if k in settings})
        if kind == "pool":
            if "pool" not in settings:
                raise self.fail(f"{where}: pool layer without field 'pool'")
            block = {"method": settings["method"], "poolSize": settings["pool"],
                     "pad": settings["pad"], "stride": settings["stride"],
                     "opts": settings["opts"]}
            return [], canon_dict(block)
        if kind in ("normalize", "lrn"):
            return [], canon_dict({"param": settings["param"]})
        if kind == "dropout":
            return [], canon_dict({"rate": settings["rate"]})
        if kind == "relu":
            return [], canon_dict({"leak": settings["leak"]})
        if kind == "softmaxloss":
            return [], {"loss": "softmaxlog"}
        if kind in ("sigmoid", "softmax"):
            return [], {}
        if kind in ("noffset", "spnorm"):
            if "param" not in settings:  # vl_simplenn reads l.param, which has no default
                raise self.fail(f"{where}: {kind} layer without field 'param'")
            return [], canon_dict({"param": settings["param"]})
        if kind == "pdist":
            return self._pdist(name, element, settings, where)
        return [], canon_dict(settings)  # unknown type: kept for the converter to judge

    def _pdist(self, name: str, element: dict[str, Any], settings: dict[str, Any],
               where: str) -> tuple[list[MCNParam], dict[str, Any]]:
        """``pdist``: its vl_nnpdist settings; a ``class`` (the target) or ``instanceWeights``
        stored in the file become parameters ``<name>_class`` / ``<name>_instanceWeights``."""
        params = []
        for field, suffix in (("class", "_class"), ("instanceWeights", "_instanceWeights")):
            value = element.get(field)
            if value is None or (isinstance(value, np.ndarray) and value.size == 0):
                continue
            if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
                raise self.fail(f"{where}.{field} should be a numeric array, got "
                                f"{describe(value)}")
            params.append(MCNParam(name + suffix, value.astype(np.float32), 0.0, 0.0))
        block = {k: settings[k] for k in ("p", "noRoot", "epsilon", "aggregate", "opts")
                 if k in settings}
        return params, canon_dict(block)
