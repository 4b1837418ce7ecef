"""The MATLAB values both MAT-file readers return, and their one error type.

:class:`MatCell`, :class:`MatStruct` and :func:`to_python` are the representation (see
:mod:`porting.converters.matfile`); :class:`MatFormatError` and :func:`fail` the one-line
error; the class tables and names the level-5 and v7.3 readers share live here, below both.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = [
    "H5_INTERNAL",
    "INTERNAL_VARIABLES",
    "NUMERIC_CLASSES",
    "fail",
    "native",
    "object_message",
    "one_line",
    "MatFormatError",
    "MatStruct",
    "MatCell",
    "to_python",
]

# Top-level names that are MAT-file machinery, not user variables.
INTERNAL_VARIABLES = frozenset(
    {"__header__", "__version__", "__globals__", "__function_workspace__"}
)
H5_INTERNAL = frozenset({"#refs#", "#subsystem#"})

NUMERIC_CLASSES: dict[str, np.dtype] = {
    name: np.dtype(dt)
    for name, dt in (
        ("double", np.float64), ("single", np.float32),
        ("int8", np.int8), ("uint8", np.uint8), ("int16", np.int16), ("uint16", np.uint16),
        ("int32", np.int32), ("uint32", np.uint32), ("int64", np.int64), ("uint64", np.uint64),
    )
}


class MatFormatError(ValueError):
    """A MAT-file that cannot be read, or whose content is not what was expected."""


def fail(path: str | os.PathLike[str], message: str) -> MatFormatError:
    """Build the one-line error: ``<file>: <message>``."""
    return MatFormatError(f"{os.fspath(path)}: {message}")


def object_message(name: str, cls: str) -> str:
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


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (at most 200 characters)."""
    text = " ".join(str(exc).split())
    return text[:200] if text else "no details"


def native(arr: np.ndarray) -> np.ndarray:
    """Same array in native byte order (no copy when it already is)."""
    if not arr.dtype.isnative:
        return arr.astype(arr.dtype.newbyteorder("="))
    return arr
