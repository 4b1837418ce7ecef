"""Read MATLAB MAT-files (level 5 = ``-v6``/``-v7``, and ``-v7.3`` = HDF5) into one representation.

Both formats come back as the same plain-Python values, in MATLAB's own shapes:

* numeric and logical arrays -> ``np.ndarray`` with the MATLAB size (always >= 2-D, trailing
  singleton dims as MATLAB keeps them) and the MATLAB class as dtype (``single`` stays float32,
  ``logical`` is bool, ``double`` is float64 even where a v7 file stored it as small integers);
* char -> ``str`` (a 1xN or empty char), ``list[str]`` (an MxN char matrix, one str per row,
  space padding kept), or an ``np.ndarray`` of 1-char str for N-D chars;
* cell -> :class:`MatCell` (object ndarray with the MATLAB size);
* struct -> :class:`MatStruct` (field order, MATLAB size, one dict per element).

Unsupported (clear :class:`MatFormatError`): MAT v4, sparse, complex, function handles and
MATLAB objects (classdef/MCOS such as a ``dagnn.DagNN`` saved without ``saveobj``).

Known ambiguity of the level-5 path: scipy returns a 0x0 struct *with no fields* exactly as an
empty cell, so it comes back as an empty :class:`MatCell` (the v7.3 path can tell them apart).
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = [
    "MatFormatError",
    "MatStruct",
    "MatCell",
    "load_mat",
    "mat_version",
    "mat_variables",
    "to_python",
]

# Top-level names that are MAT-file machinery, not user variables.
_INTERNAL_VARIABLES = frozenset(
    {"__header__", "__version__", "__globals__", "__function_workspace__"}
)
_H5_INTERNAL = frozenset({"#refs#", "#subsystem#"})

_NUMERIC_CLASSES: dict[str, np.dtype] = {
    name: np.dtype(dt)
    for name, dt in (
        ("double", np.float64), ("single", np.float32),
        ("int8", np.int8), ("uint8", np.uint8), ("int16", np.int16), ("uint16", np.uint16),
        ("int32", np.int32), ("uint32", np.uint32), ("int64", np.int64), ("uint64", np.uint64),
    )
}


class MatFormatError(ValueError):
    """A MAT-file that cannot be read, or whose content is not what was expected."""


def _fail(path: str | os.PathLike[str], message: str) -> MatFormatError:
    """Build the one-line error: ``<file>: <message>``."""
    return MatFormatError(f"{os.fspath(path)}: {message}")


def _object_message(name: str, cls: str) -> str:
    """Why a MATLAB object cannot be read, and how to re-save it."""
    if cls.startswith("dagnn."):
        hint = ("re-save it in MATLAB as a plain struct: `net = net.saveobj(); save(file, 'net')`"
                " (or `save(file, '-struct', 'net')`)")
    else:
        hint = "convert it to a struct, cell, char or numeric array in MATLAB and re-save"
    return (f"variable {name!r} holds a MATLAB object of class {cls}, which only MATLAB can "
            f"decode; {hint}")


# --------------------------------------------------------------------------------------------
# In-memory representation
# --------------------------------------------------------------------------------------------


class MatStruct:
    """A MATLAB struct array.

    ``fields`` keeps the file's field order and ``shape`` the MATLAB size. Elements are dicts
    (field -> value) stored in MATLAB's column-major order: ``s[k]`` is MATLAB's ``s(k+1)``,
    and ``s[i, j]`` is ``s(i+1, j+1)``.
    """

    __slots__ = ("fields", "shape", "_elements")

    def __init__(
        self,
        fields: Sequence[str],
        shape: Sequence[int],
        elements: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.fields: tuple[str, ...] = tuple(fields)
        self.shape: tuple[int, ...] = tuple(int(n) for n in shape)
        self._elements: list[dict[str, Any]] = [dict(e) for e in elements]
        if len(self._elements) != self.size:
            raise ValueError(f"struct of size {self.shape} needs {self.size} elements, "
                             f"got {len(self._elements)}")
        for element in self._elements:
            if tuple(element) != self.fields:
                raise ValueError(f"struct element fields {tuple(element)} != {self.fields}")

    @property
    def size(self) -> int:
        """Number of elements (``numel``)."""
        return math.prod(self.shape)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._elements)

    def __getitem__(self, index: int | tuple[int, ...]) -> dict[str, Any]:
        if isinstance(index, tuple):
            index = int(np.ravel_multi_index(index, self.shape, order="F"))
        return self._elements[index]

    def values(self, field: str) -> list[Any]:
        """The value of ``field`` in every element, in MATLAB order (``{s.field}``)."""
        if field not in self.fields:
            raise KeyError(field)
        return [e[field] for e in self._elements]

    def scalar(self) -> dict[str, Any]:
        """The only element of a 1x1 struct."""
        if self.size != 1:
            raise ValueError(f"struct has size {self.shape}, not 1x1")
        return self._elements[0]

    def __repr__(self) -> str:
        dims = "x".join(str(n) for n in self.shape)
        return f"MatStruct({dims}, fields={list(self.fields)})"


class MatCell(np.ndarray):
    """A MATLAB cell array: an object ndarray with the MATLAB size.

    Indexing is numpy's (``c[i, j]`` is MATLAB's ``c{i+1, j+1}``). MATLAB's linear order is
    column-major: use :meth:`tolist_matlab` (or ``c.ravel(order="F")``), not ``c.flat``.
    """

    def __new__(cls, shape: Sequence[int], elements: Iterable[Any] = ()) -> MatCell:
        shape = tuple(int(n) for n in shape)
        items = list(elements)
        flat = np.empty(len(items), dtype=object)
        for k, item in enumerate(items):
            flat[k] = item  # element-wise, so that arrays are not broadcast into the cell
        if flat.size != math.prod(shape):
            raise ValueError(f"cell of size {shape} needs {math.prod(shape)} elements, "
                             f"got {flat.size}")
        return flat.reshape(shape, order="F").view(cls)

    def tolist_matlab(self) -> list[Any]:
        """The elements in MATLAB's linear (column-major) order."""
        return list(np.asarray(self).ravel(order="F"))


def to_python(value: Any) -> Any:
    """Plain-Python view of a MATLAB value (for small settings, not for weights).

    1x1 struct -> dict; other structs -> list of dicts; cell -> list in MATLAB linear order;
    str / list[str] unchanged; empty numeric or logical -> None; a scalar -> bool/int/float;
    a row or column vector -> list; anything with more than one non-singleton dim (or a
    3-D+ array) stays an ndarray.
    """
    if isinstance(value, MatStruct):
        items = [{f: to_python(v) for f, v in e.items()} for e in value]
        return items[0] if value.size == 1 else items
    if isinstance(value, MatCell):
        return [to_python(e) for e in value.tolist_matlab()]
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        if value.size == 0:
            return None
        if value.ndim == 2 and 1 in value.shape:
            items = value.ravel().tolist()
            return items[0] if value.size == 1 else items
        return value
    return value


# --------------------------------------------------------------------------------------------
# Version detection
# --------------------------------------------------------------------------------------------


def _looks_like_v4(head: bytes) -> bool:
    """Whether the first 20 bytes are a plausible MAT v4 matrix header (either byte order)."""
    if len(head) < 20:
        return False
    for order in "<>":
        mopt, mrows, ncols, imagf, namlen = struct.unpack(order + "5i", head[:20])
        m, rest = divmod(mopt, 1000)
        o, rest = divmod(rest, 100)
        p, t = divmod(rest, 10)
        if (0 <= mopt < 5000 and m in (0, 1) and o == 0 and p <= 5 and t <= 2
                and mrows >= 0 and ncols >= 0 and imagf in (0, 1) and 0 < namlen < 64):
            return True
    return False


def mat_version(path: str | os.PathLike[str]) -> str:
    """The MAT-file format from the 128-byte header: ``"5"`` (v6/v7) or ``"7.3"`` (HDF5).

    Raises MatFormatError for MAT v4 (unsupported) and for anything that is not a MAT-file.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(128)
    except OSError as exc:
        raise _fail(path, f"cannot open: {exc.strerror or exc}") from exc
    if len(head) == 128 and head[126:128] in (b"IM", b"MI"):
        order = "<" if head[126:128] == b"IM" else ">"
        (version,) = struct.unpack(order + "H", head[124:126])
        if version == 0x0100:
            return "5"
        if version == 0x0200:
            return "7.3"
        raise _fail(path, f"unknown MAT-file version 0x{version:04x} in the header")
    if _looks_like_v4(head):
        raise _fail(path, "MAT v4 files are not supported; re-save with save(file, ..., '-v7')")
    if head.startswith(b"\x89HDF"):
        raise _fail(path, "HDF5 file without a MATLAB 7.3 header (not a MAT-file)")
    if len(head) < 128:
        raise _fail(path, f"not a MAT-file (only {len(head)} bytes, a MAT header is 128)")
    raise _fail(path, "not a MAT-file (no MATLAB level-5 or 7.3 header)")


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def mat_variables(path: str | os.PathLike[str]) -> list[str]:
    """Names of the variables in a MAT-file, without reading their values."""
    version = mat_version(path)
    if version == "7.3":
        from .matfile_v73 import _h5_variables, _open_h5

        with _open_h5(path) as f:
            return _h5_variables(f, path)
    import scipy.io

    try:
        found = scipy.io.whosmat(os.fspath(path))
    except Exception:
        # scipy cannot list some files (e.g. objects), while loading reports them precisely.
        return list(load_mat(path))
    return [name for name, _, _ in found if name not in _INTERNAL_VARIABLES]


def load_mat(
    path: str | os.PathLike[str], variable_names: Iterable[str] | None = None
) -> dict[str, Any]:
    """Read a MAT-file (v6, v7 or v7.3) into ``{variable: value}`` (see the module docstring).

    ``variable_names`` restricts reading to those top-level variables (missing ones are
    skipped), e.g. to avoid loading the momentum buffers of a training checkpoint.
    """
    version = mat_version(path)
    names = None if variable_names is None else list(variable_names)
    if version == "7.3":
        from .matfile_v73 import _load_h5

        return _load_h5(path, names)
    return _load_v5(path, names)


# --------------------------------------------------------------------------------------------
# Level 5 (scipy)
# --------------------------------------------------------------------------------------------


def _load_v5(path: str | os.PathLike[str], names: list[str] | None) -> dict[str, Any]:
    from .matfile_isolated import run_isolated

    return run_isolated(lambda: _read_v5(path, names), path)


def _read_v5(path: str | os.PathLike[str], names: list[str] | None) -> dict[str, Any]:
    raw = _scipy_loadmat(path, names)
    return {name: _from_scipy(value, path, name) for name, value in raw.items()
            if name not in _INTERNAL_VARIABLES}


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
        raise _fail(path, "complex values are not supported") from exc
    except MatFormatError:
        raise
    except Exception as exc:  # scipy raises many types on corrupt/truncated input
        raise _fail(path, f"corrupt or truncated MAT-file ({type(exc).__name__}: "
                          f"{_one_line(exc)})") from exc
    return raw


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else "no details"


def _native(arr: np.ndarray) -> np.ndarray:
    """Same array in native byte order (no copy when it already is)."""
    if not arr.dtype.isnative:
        return arr.astype(arr.dtype.newbyteorder("="))
    return arr


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
            return _native(value)
        if value.dtype.kind == "U":
            return _chars_to_python(value)
    from scipy.io.matlab import MatlabFunction, MatlabObject, MatlabOpaque
    from scipy.sparse import issparse

    if isinstance(value, MatlabOpaque):
        name, cls = _opaque_names(value, where)
        raise _fail(path, _object_message(name, cls))
    if isinstance(value, MatlabObject):
        raise _fail(path, _object_message(where, str(value.classname)))
    if isinstance(value, MatlabFunction):
        raise _fail(path, f"{where} is a function handle (not supported)")
    if issparse(value):
        raise _fail(path, f"{where} is a sparse matrix (not supported)")
    if not isinstance(value, np.ndarray):
        raise _fail(path, f"{where}: unexpected value of type {type(value).__name__}")
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
        return _native(np.asarray(value))
    if value.dtype.kind == "c":
        raise _fail(path, f"{where} is complex (not supported)")
    raise _fail(path, f"{where}: unsupported data of dtype {value.dtype}")


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
