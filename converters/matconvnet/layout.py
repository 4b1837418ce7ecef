"""What every MatConvNet layout is read into: :class:`MCNModel` (layers, params, vars, meta)
and the canonical forms of ``dagnn.*`` block properties, shared by the DagNN and SimpleNN
readers of :mod:`~porting.converters.matconvnet.model`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..matfile import MatCell, MatStruct


@dataclass(frozen=True)
class MCNParam:
    """One DagNN parameter: ``value`` in MATLAB layout (see the module docstring)."""

    name: str
    value: np.ndarray
    learningRate: float = 1.0  # DagNN's defaults when a file has no such field
    weightDecay: float = 1.0


@dataclass(frozen=True)
class MCNLayer:
    """One layer: ``type`` is the dagnn class name, ``block`` its properties as Python values.

    Block values: numbers as float/int (lists for vectors), logicals as bool, chars as str,
    cells as lists, empty values as None. ``pad``/``crop`` are expanded to 4 ints
    [top bottom left right], ``stride``/``dilate``/``poolSize``/``upsample`` to 2 ints.
    """

    name: str
    type: str
    inputs: list[str]
    outputs: list[str]
    params: list[str]
    block: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class MCNModel:
    """A MatConvNet network in one DagNN-like form, whatever the file layout."""

    layers: list[MCNLayer]
    params: dict[str, MCNParam]
    vars: list[str]
    meta: dict[str, Any]
    layout: str
    stats_summary: dict[str, list[dict[str, float]]]
    source_path: str
    mat_version: str

    def layer(self, name: str) -> MCNLayer:
        """The layer called ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)


# --------------------------------------------------------------------------------------------
# Value helpers
# --------------------------------------------------------------------------------------------

_EXPAND = {"pad": 4, "crop": 4, "stride": 2, "dilate": 2, "poolSize": 2, "upsample": 2}
_INT_LISTS = {"size", "imageSize", "border"}
_INT_SCALARS = {"numGroups", "numChannels", "dim", "numInputs"}
_BOOLS = {"hasBias", "useShortCircuit", "frozen", "precious", "keepAspect"}
_FLOATS = {"leak", "rate", "epsilon"}


def _as_int(x: Any) -> Any:
    """An integral float to int; anything else unchanged (never truncates)."""
    if isinstance(x, float) and x.is_integer():
        return int(x)
    return x


def canonical(key: str, value: Any) -> Any:
    """Canonical Python form of a known block/meta setting (others unchanged)."""
    if key in _EXPAND and value is not None and not isinstance(value, np.ndarray):
        # (a matrix stays as it is, for the converter to refuse by its size)
        items = value if isinstance(value, list) else [value]
        if len(items) == 1:
            items = items * _EXPAND[key]
        return [_as_int(v) for v in items]
    if key in _INT_LISTS and value is not None:
        return [_as_int(v) for v in (value if isinstance(value, list) else [value])]
    if key in _INT_SCALARS:
        return _as_int(value)
    if key in _BOOLS and isinstance(value, bool | int | float):
        return bool(value)
    if key in _FLOATS and isinstance(value, int | float):
        return float(value)
    if key == "param" and isinstance(value, list):
        return [float(v) for v in value]
    if key == "opts" and value is None:
        return []
    return value


def column(value: np.ndarray) -> np.ndarray:
    """A 1xK or Kx1 vector as a Kx1 column (a view)."""
    if value.ndim == 2 and value.shape[0] == 1 and value.shape[1] != 1:
        return value.reshape((value.shape[1], 1), order="F")
    return value


def four_d(value: np.ndarray) -> np.ndarray:
    """Restore the trailing singleton dims MATLAB drops from an HxWxCxK filter (a view)."""
    if 0 < value.ndim < 4:
        return value.reshape(value.shape + (1,) * (4 - value.ndim), order="F")
    return value


# layers, params, vars, meta
Parts = tuple[list[MCNLayer], dict[str, MCNParam], list[str], dict[str, Any]]


def holds_layers(value: Any) -> bool:
    """Whether ``value`` is a 1x1 struct with a ``layers`` field (a saved network)."""
    return isinstance(value, MatStruct) and value.size == 1 and "layers" in value.fields


def canon_dict(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in values.items():
        try:
            out[k] = canonical(k, v)
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. a string in a numeric cell
            raise ValueError(f"{k} {describe(v)}: {exc}") from None
    return out


def new_name(existing: list[str], prefix: str) -> str:
    """``prefix``, then ``prefix1``, ``prefix2``... (fromSimpleNN's getNewVarName)."""
    name, t = prefix, 0
    while name in existing:
        t += 1
        name = f"{prefix}{t}"
    return name


def describe(value: Any) -> str:
    """Short description of a MATLAB value for error messages."""
    if isinstance(value, MatStruct):
        return f"a {'x'.join(map(str, value.shape))} struct"
    if isinstance(value, MatCell):
        return f"a {'x'.join(map(str, value.shape))} cell"
    if isinstance(value, np.ndarray):
        return f"a {'x'.join(map(str, value.shape))} {value.dtype} array"
    if isinstance(value, str):
        return f"the string {value!r}"
    return type(value).__name__
