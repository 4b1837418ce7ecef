"""Read any MatConvNet model file into one normalised, DagNN-shaped :class:`MCNModel`.

Layouts (``MCNModel.layout``):

* ``"dagnn"``: a ``saveobj`` struct saved with ``-struct`` (top-level ``vars``, ``params``,
  ``layers``, ``meta``; e.g. ``imagenet-resnet-50-dag.mat``);
* ``"dagnn-import"``: the same written by ``import-caffe.py`` before tidying (no ``vars``,
  params with only name/value, blocks holding only some fields or a 0x0 double);
* ``"dagnn-net"``: the struct under a variable, as ``cnn_train_dag`` saves
  ``net-epoch-N.mat`` (``net``, ``state``, ``stats``; ``state`` is never read);
* ``"simplenn"`` / ``"simplenn-legacy"`` / ``"simplenn-net"``: a ``layers`` cell array,
  tidy, pre-beta17 (``filters``/``biases``, top-level ``normalization``/``classes``), or under
  ``net``. It is expressed as ``dagnn.DagNN.fromSimpleNN`` would (``dagnn.*`` types, params
  ``<layer>f``/``<layer>b`` for conv and ``<layer>m``/``<layer>b``/``<layer>x`` for bnorm,
  ``label`` inputs for ``softmaxloss``), except for var names: the input is ``input`` and
  each layer's output var is the layer's own name (what ``vl_simplenn`` fixtures are keyed by).

Parameter values are the loaded arrays in MATLAB layout, never copied. Only these views are
taken: conv filters get their trailing singleton dims back (always HxWxCin/groupsxCout, as
MATLAB drops a trailing Cout = 1), and conv biases and BatchNorm mult/bias become Kx1 columns
(MatConvNet only uses their numel; old SimpleNN files store 1xK). BatchNorm moments stay Kx2.

Which layer types and settings are supported is the converter's business, not this module's.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..matfile import (
    MatCell,
    MatFormatError,
    MatStruct,
    load_mat,
    mat_variables,
    mat_version,
    to_python,
)
from .layout import (
    MCNLayer,
    MCNModel,
    MCNParam,
    Parts,
    canon_dict,
    canonical,
    column,
    describe,
    four_d,
    holds_layers,
)
from .simplenn import SimpleNNLayout

__all__ = ["MCNParam", "MCNLayer", "MCNModel", "read_matconvnet", "build_model"]

# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------

# Variables that can hold the network (or its meta/stats); anything else is read only when
# the network has to be searched for. ``state`` (momentum buffers) is never needed.
_NETWORK_VARIABLES = ("layers", "params", "vars", "meta", "normalization", "classes")


def read_matconvnet(path: str | os.PathLike[str]) -> MCNModel:
    """Read a MatConvNet ``.mat`` (v6/v7/v7.3) in any known layout into an :class:`MCNModel`."""
    version = mat_version(path)
    # Ask for the usual variables directly (absent ones are skipped): listing the file first
    # would inflate every compressed variable's header, ``state`` included, once more.
    variables = load_mat(path, ["net", "stats", *_NETWORK_VARIABLES])
    names = None
    if "layers" in variables:
        variables = {k: v for k, v in variables.items() if k in _NETWORK_VARIABLES}
    elif holds_layers(variables.get("net")):
        variables = {k: v for k, v in variables.items() if k in ("net", "stats")}
    else:  # look elsewhere
        names = mat_variables(path)
        variables = load_mat(path, [n for n in names if n != "state"])
    return build_model(variables, source_path=os.fspath(path), mat_version=version,
                       all_variables=names)


def build_model(
    variables: dict[str, Any],
    source_path: str = "<memory>",
    mat_version: str = "",
    all_variables: list[str] | None = None,
) -> MCNModel:
    """Normalise the variables of a MatConvNet file (as :func:`load_mat` returns them)."""
    return _Builder(variables, source_path, mat_version, all_variables).build()




class _Builder(SimpleNNLayout):
    def __init__(
        self,
        variables: dict[str, Any],
        source_path: str,
        mat_version: str,
        all_variables: list[str] | None,
    ) -> None:
        self.vars_in_file = variables
        self.path = source_path
        self.version = mat_version
        self.all_variables = all_variables if all_variables is not None else list(variables)

    def fail(self, message: str) -> MatFormatError:
        return MatFormatError(f"{self.path}: {message}")

    # -- locating the network --------------------------------------------------------------

    def _locate(self) -> tuple[dict[str, Any], str, str]:
        """(struct holding ``layers``, prefix for messages, name of the holding variable)."""
        top = self.vars_in_file
        if "layers" in top:
            return top, "", ""
        candidates = ["net"] if holds_layers(top.get("net")) else [
            name for name, value in top.items() if holds_layers(value)
        ]
        if len(candidates) == 1:
            name = candidates[0]
            return top[name].scalar(), f"{name}.", name
        found = ", ".join(sorted(self.all_variables)) or "none"
        if candidates:
            raise self.fail(f"several variables hold a network ({', '.join(candidates)}); "
                            f"re-save the one to convert on its own")
        raise self.fail(f"no MatConvNet network (no 'layers' variable, nor a struct with a "
                        f"'layers' field); variables found: {found}")

    def build(self) -> MCNModel:
        root, prefix, holder = self._locate()
        layers = root["layers"]
        if isinstance(layers, MatStruct):
            model = self._dagnn(root, prefix)
            layout = "dagnn-net" if holder else ("dagnn" if "vars" in root else "dagnn-import")
        elif isinstance(layers, MatCell):
            model, legacy = self._simplenn(root, prefix)
            layout = "simplenn-net" if holder else ("simplenn-legacy" if legacy else "simplenn")
        else:
            raise self.fail(f"{prefix}layers is a {type(layers).__name__}, expected a struct "
                            f"array (DagNN) or a cell array (SimpleNN)")
        layers_, params, vars_, meta = model
        stats = self._stats(self.vars_in_file.get("stats")) if holder else {}
        return MCNModel(layers=layers_, params=params, vars=vars_, meta=meta, layout=layout,
                        stats_summary=stats, source_path=self.path, mat_version=self.version)

    # -- field access with errors that name the place ------------------------------------------

    def _str(self, element: dict[str, Any], key: str, where: str) -> str:
        if key not in element:
            raise self.fail(f"{where} has no field {key!r}")
        value = element[key]
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where}.{key} should be a non-empty string, got "
                            f"{describe(value)}")
        return value

    def _names(self, element: dict[str, Any], key: str, where: str) -> list[str]:
        """A cell array of strings (a lone string or an empty value also accepted)."""
        value = element.get(key)
        if value is None or (isinstance(value, np.ndarray) and value.size == 0):
            return []
        if isinstance(value, str):
            return [value] if value else []
        if isinstance(value, MatCell):
            items = value.tolist_matlab()
            if all(isinstance(s, str) and s for s in items):
                return items
        raise self.fail(f"{where}.{key} should be a cell array of names, got "
                        f"{describe(value)}")

    # -- DagNN -------------------------------------------------------------------------------

    def _dagnn(self, root: dict[str, Any], prefix: str) -> Parts:
        params = self._dagnn_params(root.get("params"), prefix)
        layers: list[MCNLayer] = []
        seen: set[str] = set()
        for k, element in enumerate(root["layers"]):
            where = f"{prefix}layers({k + 1})"
            name = self._str(element, "name", where)
            where = f"layer {name!r} ({where})"
            if name in seen:
                raise self.fail(f"{where}: duplicate layer name")
            seen.add(name)
            layer_type = self._str(element, "type", where)
            pnames = self._names(element, "params", where)
            for p in pnames:
                if p not in params:
                    raise self.fail(f"{where} references param {p!r}, which is not in "
                                    f"{prefix}params")
            layers.append(MCNLayer(
                name=name,
                type=layer_type,
                inputs=self._names(element, "inputs", where),
                outputs=self._names(element, "outputs", where),
                params=pnames,
                block=self._block(element.get("block"), where),
            ))
        values = self._shape_params(layers, {n: v for n, (v, _, _) in params.items()})
        final = {n: MCNParam(n, values[n], lr, wd) for n, (_, lr, wd) in params.items()}
        vars_ = self._layer_vars(layers)
        if "vars" in root:
            listed = [self._str(v, "name", f"{prefix}vars({k + 1})")
                      for k, v in enumerate(self._struct_array(root["vars"], f"{prefix}vars"))]
            vars_ = listed + [v for v in vars_ if v not in set(listed)]
        return layers, final, vars_, self._meta(root.get("meta"), f"{prefix}meta")

    def _struct_array(self, value: Any, where: str) -> MatStruct:
        if isinstance(value, MatStruct):
            return value
        if isinstance(value, np.ndarray | MatCell) and value.size == 0:
            return MatStruct((), (0, 0))
        raise self.fail(f"{where} should be a struct array, got {describe(value)}")

    def _dagnn_params(self, value: Any, prefix: str) -> dict[str, tuple[np.ndarray, float, float]]:
        """name -> (value, learningRate, weightDecay); a repeated name keeps the last entry,
        as ``dagnn.DagNN.loadobj`` does."""
        out: dict[str, tuple[np.ndarray, float, float]] = {}
        if value is None:
            return out
        for k, element in enumerate(self._struct_array(value, f"{prefix}params")):
            where = f"{prefix}params({k + 1})"
            name = self._str(element, "name", where)
            where = f"param {name!r} ({where})"
            if "value" not in element:
                raise self.fail(f"{where} has no field 'value'")
            array = element["value"]
            if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
                raise self.fail(f"{where}.value should be a numeric array, got "
                                f"{describe(array)}")
            out[name] = (array, self._rate(element, "learningRate", where),
                         self._rate(element, "weightDecay", where))
        return out

    def _rate(self, element: dict[str, Any], key: str, where: str) -> float:
        value = element.get(key)
        if value is None or (isinstance(value, np.ndarray) and value.size == 0):
            return 1.0
        if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "biuf":
            return float(value.ravel()[0])
        raise self.fail(f"{where}.{key} should be a number, got {describe(value)}")

    def _block(self, value: Any, where: str) -> dict[str, Any]:
        if value is None or (isinstance(value, np.ndarray) and value.size == 0):
            return {}  # import-caffe.py writes Sum/SoftMax blocks as a 0x0 double
        if not isinstance(value, MatStruct) or value.size != 1:
            raise self.fail(f"{where}.block should be a 1x1 struct, got {describe(value)}")
        try:
            return canon_dict({k: to_python(v) for k, v in value.scalar().items()})
        except ValueError as exc:
            raise self.fail(f"{where}.block.{exc}") from None

    @staticmethod
    def _layer_vars(layers: list[MCNLayer]) -> list[str]:
        """Vars in the order DagNN creates them (each layer's inputs, then its outputs)."""
        seen: dict[str, None] = {}
        for layer in layers:
            for name in layer.inputs + layer.outputs:
                seen.setdefault(name, None)
        return list(seen)

    @staticmethod
    def _shape_params(
        layers: list[MCNLayer], values: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Role-based views: 4-D conv filters, Kx1 biases and BatchNorm mult/bias."""
        done: set[str] = set()
        for layer in layers:
            if layer.type in ("dagnn.Conv", "dagnn.ConvTranspose"):
                roles = [four_d, column]
            elif layer.type == "dagnn.BatchNorm":
                roles = [column, column]
            else:
                continue
            for pname, role in zip(layer.params, roles, strict=False):
                if pname not in done and values[pname].size:
                    values[pname] = role(values[pname])
                done.add(pname)
        return values

    def _vector(self, element: dict[str, Any], key: str, where: str) -> list[float]:
        value = element.get(key)
        if value is None or (isinstance(value, np.ndarray) and value.size == 0):
            return []
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            return [float(v) for v in value.ravel(order="F")]
        raise self.fail(f"{where}.{key} should be numeric, got {describe(value)}")

    # -- meta and stats -------------------------------------------------------------------

    def _meta(self, value: Any, where: str) -> dict[str, Any]:
        if value is None or (isinstance(value, np.ndarray | MatCell) and value.size == 0):
            return {}
        if not isinstance(value, MatStruct) or value.size != 1:
            raise self.fail(f"{where} should be a 1x1 struct, got {describe(value)}")
        raw = value.scalar()
        meta = {k: to_python(v) for k, v in raw.items()}
        norm = raw.get("normalization")
        if isinstance(norm, MatStruct) and norm.size == 1:
            fields = norm.scalar()
            out = {k: canonical(k, to_python(v)) for k, v in fields.items()}
            if "averageImage" in fields:
                out["averageImage"] = self._average_image(fields["averageImage"],
                                                          f"{where}.normalization")
            meta["normalization"] = out
        if "inputs" in meta and meta["inputs"] is not None:
            inputs = meta["inputs"] if isinstance(meta["inputs"], list) else [meta["inputs"]]
            meta["inputs"] = [canon_dict(i) if isinstance(i, dict) else i for i in inputs]
        classes = meta.get("classes")
        if isinstance(classes, dict):
            for key in ("name", "description"):
                if isinstance(classes.get(key), str):
                    classes[key] = [classes[key]]
        return meta

    def _average_image(self, value: Any, where: str) -> np.ndarray | None:
        """The mean to subtract: 1x1x3 (a 3-vector is reshaped) or HxWx3, as stored."""
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
            raise self.fail(f"{where}.averageImage should be numeric, got {describe(value)}")
        if value.size == 0:
            return None
        if value.size == 3 and value.ndim <= 2:
            return value.reshape((1, 1, 3), order="F")
        return value

    def _stats(self, value: Any) -> dict[str, list[dict[str, float]]]:
        """``stats.<split>(epoch).<field>`` -> {split: [{field: number} per epoch]}."""
        if not isinstance(value, MatStruct) or value.size != 1:
            return {}
        summary: dict[str, list[dict[str, float]]] = {}
        for split, epochs in value.scalar().items():
            if not isinstance(epochs, MatStruct):
                continue
            summary[split] = [
                {k: float(v.ravel()[0]) for k, v in epoch.items()
                 if isinstance(v, np.ndarray) and v.size == 1 and v.dtype.kind in "biuf"}
                for epoch in epochs
            ]
        return summary


