"""The level-5 reader (``-v6``/``-v7``): scipy's ``loadmat`` in the isolated child
(:mod:`~porting.converters.matfile.isolated`), its values turned into the representation of
:mod:`~porting.converters.matfile.values`.

Known ambiguity: scipy returns a 0x0 struct *with no fields* exactly as an empty cell, so it
comes back as an empty :class:`MatCell` (the v7.3 path can tell them apart).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from .isolated import run_isolated
from .values import (
    INTERNAL_VARIABLES,
    MatCell,
    MatFormatError,
    MatStruct,
    fail,
    native,
    object_message,
    one_line,
)


def load_v5(path: str | os.PathLike[str], names: list[str] | None) -> dict[str, Any]:
    """Read a level-5 MAT-file (only ``names`` when given) in the isolated child."""
    return run_isolated(lambda: _read_v5(path, names), path)


def _read_v5(path: str | os.PathLike[str], names: list[str] | None) -> dict[str, Any]:
    raw = _scipy_loadmat(path, names)
    return {name: _from_scipy(value, path, name) for name, value in raw.items()
            if name not in INTERNAL_VARIABLES}


def _scipy_loadmat(path: str | os.PathLike[str], names: list[str] | None) -> dict:
    import scipy.io

    try:
        with warnings.catch_warnings():
            # mat_dtype=True returns MATLAB's class (doubles that MATLAB stored as small ints
            # come back as double, logicals as bool), but it casts complex data to real with
            # only a warning: make that an error instead of silently dropping imaginary parts.
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            raw = scipy.io.loadmat(
                os.fspath(path),
                squeeze_me=False,
                struct_as_record=True,
                mat_dtype=True,
                chars_as_strings=False,
                variable_names=names,
            )
    except np.exceptions.ComplexWarning as exc:
        raise fail(path, "complex values are not supported") from exc
    except MatFormatError:
        raise
    except Exception as exc:  # scipy raises many types on corrupt/truncated input
        raise fail(path, f"corrupt or truncated MAT-file ({type(exc).__name__}: "
                          f"{one_line(exc)})") from exc
    return raw


def _chars_to_python(chars: np.ndarray) -> str | list[str] | np.ndarray:
    """A char array (MATLAB size, one character per element) to str / list[str]."""
    if chars.ndim > 2:
        return np.asarray(chars, dtype="<U1")
    rows = chars.shape[0]
    if rows <= 1:
        return "".join(chars.ravel().tolist()) if rows == 1 else ""
    return ["".join(row) for row in chars.tolist()]


def _from_scipy(value: Any, path: str | os.PathLike[str], where: str) -> Any:
    """Convert one scipy.io.loadmat value (squeeze_me=False, records) to the representation."""
    if type(value) is np.ndarray:  # the common cases first (MATLAB objects subclass it)
        if value.dtype.kind in "biuf":
            return native(value)
        if value.dtype.kind == "U":
            return _chars_to_python(value)
    from scipy.io.matlab import MatlabFunction, MatlabObject, MatlabOpaque
    from scipy.sparse import issparse

    if isinstance(value, MatlabOpaque):
        name, cls = _opaque_names(value, where)
        raise fail(path, object_message(name, cls))
    if isinstance(value, MatlabObject):
        raise fail(path, object_message(where, str(value.classname)))
    if isinstance(value, MatlabFunction):
        raise fail(path, f"{where} is a function handle (not supported)")
    if issparse(value):
        raise fail(path, f"{where} is a sparse matrix (not supported)")
    if not isinstance(value, np.ndarray):
        raise fail(path, f"{where}: unexpected value of type {type(value).__name__}")
    if value.dtype.names is not None:
        fields = value.dtype.names
        elements = []
        flat = value.ravel(order="F")
        for k, record in enumerate(flat):
            elements.append({
                f: _from_scipy(record[f], path, f"{where}({k + 1}).{f}") for f in fields
            })
        return MatStruct(fields, value.shape, elements)
    if value.dtype == object:
        flat = value.ravel(order="F")
        if flat.size and all(e is None for e in flat):
            # scipy's rendering of a struct with no fields
            return MatStruct((), value.shape, [{} for _ in range(flat.size)])
        return MatCell(value.shape, [
            _from_scipy(e, path, f"{where}{{{k + 1}}}") for k, e in enumerate(flat)
        ])
    if value.dtype.kind == "U":
        return _chars_to_python(value)
    if value.dtype.kind in "biuf":
        return native(np.asarray(value))
    if value.dtype.kind == "c":
        raise fail(path, f"{where} is complex (not supported)")
    raise fail(path, f"{where}: unsupported data of dtype {value.dtype}")


def _opaque_names(value: np.ndarray, where: str) -> tuple[str, str]:
    """(variable name, class name) of a scipy MatlabOpaque (its ``s0`` and ``s2`` fields).

    scipy files a top-level object under the key ``'None'``; ``s0`` has the real name.
    """

    def text(key: str, default: str) -> str:
        try:
            raw = value.ravel()[0][key]
        except (IndexError, KeyError, ValueError):
            return default
        raw = raw.decode("latin1") if isinstance(raw, bytes) else str(raw)
        return raw or default

    return text("s0", where) if where == "None" else where, text("s2", "<unknown>")
