"""Test-side writer of MATLAB ``-v7.3`` MAT-files (HDF5), following the project's MAT73.md.

It saves the in-memory representation returned by ``porting.converters.matfile.load_mat``
(ndarray, bool/int/float scalars, str, list[str] char matrices, MatCell, MatStruct) the way
MATLAB lays it out:

* a 512-byte userblock holding the 128-byte MAT header (version 0x0200, ``IM``), superblock v0;
* a ``MATLAB_class`` attribute (fixed-length NULLTERM ASCII) on every variable, field and
  cell element; dims reversed over column-major bytes; chars as uint16 UTF-16 code units with
  ``MATLAB_int_decode`` 2; logicals as uint8 with ``MATLAB_int_decode`` 1;
* empty values as a uint64 dataset of the MATLAB size plus ``MATLAB_empty`` = 1 (and
  ``MATLAB_fields`` for structs); ``/#refs#/a`` is the canonical empty that ``[]`` cell
  elements point to;
* cells as object-reference datasets into ``/#refs#``; 1x1 structs as groups with
  ``MATLAB_fields`` (vlen of 1-char strings); struct arrays as groups of one reference
  dataset per field (no attributes), elements allocated field by field;
* ``#refs#`` names b..z, A..Z, then ba, bb, ... allocated depth first, pre-order;
  ``H5PATH`` attributes as MATLAB writes them; compact storage under 16 KiB, otherwise
  chunks of at most 64 KiB with deflate 3.

It also writes the stand-in of a MATLAB object (``write_object_standin``) for error tests.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from porting.converters.matfile import MatCell, MatStruct

HEADER_TEXT = (
    "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Nov 24 08:45:00 2025 "
    "HDF5 schema 1.00 ."
)
COMPACT_LIMIT = 16 * 1024
CHUNK_LIMIT = 64 * 1024
_REF_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

_CLASS_OF_DTYPE = {
    np.dtype(np.float64): "double", np.dtype(np.float32): "single",
    np.dtype(np.int8): "int8", np.dtype(np.uint8): "uint8",
    np.dtype(np.int16): "int16", np.dtype(np.uint16): "uint16",
    np.dtype(np.int32): "int32", np.dtype(np.uint32): "uint32",
    np.dtype(np.int64): "int64", np.dtype(np.uint64): "uint64",
}


def mat_header() -> bytes:
    """The 128-byte MAT header MATLAB writes at the start of the 512-byte userblock."""
    text = HEADER_TEXT.encode("ascii").ljust(116, b" ")
    return text + b"\x00" * 8 + b"\x00\x02" + b"IM"


def save_v73(path: str | os.PathLike[str], variables: Mapping[str, Any]) -> None:
    """Write ``variables`` (name -> value in the load_mat representation) as a v7.3 file."""
    with h5py.File(os.fspath(path), "w", userblock_size=512, libver="earliest") as f:
        writer = _Writer(f)
        for name, value in variables.items():
            writer.write(f, name, value, h5path=None)
    with open(path, "r+b") as fh:
        fh.write(mat_header() + b"\x00" * (512 - 128))


def write_object_standin(path: str | os.PathLike[str], name: str, class_name: str) -> None:
    """A v7.3 file whose variable ``name`` is a MATLAB (MCOS) object of ``class_name``.

    As MATLAB stores it: a uint32 dataset with the class name as ``MATLAB_class`` and
    ``MATLAB_object_decode`` = 3, its real content living in ``/#subsystem#``.
    """
    with h5py.File(os.fspath(path), "w", userblock_size=512, libver="earliest") as f:
        ds = f.create_dataset(name, data=np.array([[0xDD000000], [2], [1], [1], [1], [1]],
                                                  dtype=np.uint32).T)
        _set_str_attr(ds, "MATLAB_class", class_name)
        ds.attrs.create("MATLAB_object_decode", np.int32(3))
        sub = f.create_group("#subsystem#")
        _set_str_attr(sub, "MATLAB_class", "FileWrapper__")
        sub.create_dataset("MCOS", data=np.zeros((1, 8), dtype=np.uint8))
    with open(path, "r+b") as fh:
        fh.write(mat_header())


# --------------------------------------------------------------------------------------------
# Low-level helpers
# --------------------------------------------------------------------------------------------


@functools.cache
def _str_type(size: int) -> h5py.h5t.TypeStringID:
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(size)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    return tid


def _set_str_attr(obj: Any, key: str, value: str) -> None:
    """Scalar fixed-length NULLTERM ASCII string attribute whose size is the string length."""
    raw = value.encode("ascii")
    tid = _str_type(len(raw))
    aid = h5py.h5a.create(obj.id, key.encode(), tid, h5py.h5s.create(h5py.h5s.SCALAR))
    aid.write(np.array(raw, dtype=f"S{len(raw)}"), mtype=tid)


def _set_fields_attr(obj: Any, fields: tuple[str, ...]) -> None:
    """``MATLAB_fields``: H5T_VLEN of 1-byte NULLTERM strings, one sequence per field."""
    base = h5py.h5t.C_S1.copy()
    base.set_size(1)
    base.set_strpad(h5py.h5t.STR_NULLTERM)
    vlen = h5py.h5t.vlen_create(base)
    # Converting into a 1-byte NULLTERM string keeps only the terminator, so hand HDF5 the
    # raw hvl_t records ({length, pointer}) in exactly the file's type: no conversion happens.
    chars = [np.frombuffer(f.encode("ascii"), dtype=np.uint8).copy() for f in fields]
    records = np.zeros(len(fields), dtype=[("len", np.uintp), ("p", np.uintp)])
    for k, buf in enumerate(chars):
        records["len"][k] = buf.size
        records["p"][k] = buf.ctypes.data
    aid = h5py.h5a.create(obj.id, b"MATLAB_fields", vlen, h5py.h5s.create_simple((len(fields),)))
    if fields:
        aid.write(records, mtype=vlen)


def _chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """At most 64 KiB, halving the last HDF5 dims first (128x128 double -> (128, 64))."""
    chunk = list(shape)
    axis = len(chunk) - 1
    while math.prod(chunk) * itemsize > CHUNK_LIMIT and axis >= 0:
        if chunk[axis] > 1:
            chunk[axis] = math.ceil(chunk[axis] / 2)
        else:
            axis -= 1
    return tuple(chunk)


@functools.cache
def _compact_dcpl() -> h5py.h5p.PropDCID:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    dcpl.set_layout(h5py.h5d.COMPACT)
    return dcpl


def _dataset(parent: Any, name: str, data: np.ndarray) -> h5py.Dataset:
    """Create and fill a dataset (compact when small, chunked + deflate 3 otherwise)."""
    data = np.ascontiguousarray(data)
    tid = h5py.h5t.py_create(data.dtype, logical=True)
    if data.nbytes < COMPACT_LIMIT:
        dcpl = _compact_dcpl()
    else:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_obj_track_times(False)
        dcpl.set_chunk(_chunks(data.shape, data.dtype.itemsize))
        dcpl.set_deflate(3)
    space = h5py.h5s.create_simple(data.shape)
    dsid = h5py.h5d.create(parent.id, name.encode(), tid, space, dcpl=dcpl)
    if data.size:
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, data)
    return h5py.Dataset(dsid)


def _group(parent: Any, name: str) -> h5py.Group:
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    return h5py.Group(h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl))


def _hdf5_layout(value: np.ndarray) -> np.ndarray:
    """MATLAB array -> HDF5 data: the same column-major bytes with the dims reversed."""
    return value.T


def _as_matlab_array(value: Any) -> np.ndarray:
    """Python scalars and <2-D arrays to MATLAB-shaped (>= 2-D) arrays."""
    if isinstance(value, bool | np.bool_):
        return np.array([[bool(value)]])
    if isinstance(value, int | float | np.integer | np.floating):
        return np.array([[value]], dtype=np.float64 if isinstance(value, int | float) else None)
    arr = np.asarray(value)
    if arr.ndim == 0:
        return arr.reshape(1, 1)
    if arr.ndim == 1:
        return arr.reshape(1, -1)
    return arr


class _Writer:
    def __init__(self, f: h5py.File) -> None:
        self.f = f
        self.refs: h5py.Group | None = None
        self.count = 0

    # -- #refs# --------------------------------------------------------------------------

    def _refs(self) -> h5py.Group:
        if self.refs is None:
            self.refs = _group(self.f, "#refs#")
            empty = _dataset(self.refs, "a", np.array([0, 0], dtype=np.uint64))
            _set_str_attr(empty, "MATLAB_class", "canonical empty")
            empty.attrs.create("MATLAB_empty", np.uint8(1))
        return self.refs

    def _next_name(self) -> str:
        self.count += 1
        n, digits = self.count, []
        while n:
            n, d = divmod(n, len(_REF_ALPHABET))
            digits.append(_REF_ALPHABET[d])
        return "".join(reversed(digits))

    def ref(self, value: Any) -> h5py.Reference:
        """Store ``value`` under /#refs# (name allocated before its children) and refer to it."""
        refs = self._refs()
        if (isinstance(value, np.ndarray) and not isinstance(value, MatCell)
                and value.dtype == np.float64 and value.shape == (0, 0)):
            return refs["a"].ref
        name = self._next_name()
        obj = self.write(refs, name, value, h5path=f"/#refs#/{name}")
        return obj.ref

    def _ref_dataset(
        self, parent: Any, name: str, values: list[Any], shape: tuple[int, ...]
    ) -> h5py.Dataset:
        flat = np.empty(len(values), dtype=h5py.ref_dtype)
        for k, v in enumerate(values):
            flat[k] = self.ref(v)
        return _dataset(parent, name, _hdf5_layout(flat.reshape(shape, order="F")))

    # -- values ----------------------------------------------------------------------------

    def write(self, parent: Any, name: str, value: Any, h5path: str | None) -> Any:
        if isinstance(value, MatStruct):
            obj = self._struct(parent, name, value, h5path)
        elif isinstance(value, MatCell):
            if value.size == 0:
                obj = self._empty(parent, name, "cell", value.shape)
            else:
                obj = self._ref_dataset(parent, name, value.tolist_matlab(), value.shape)
                _set_str_attr(obj, "MATLAB_class", "cell")
        elif isinstance(value, str | list):
            obj = self._chars(parent, name, value)
        else:
            obj = self._numeric(parent, name, _as_matlab_array(value))
        if h5path is not None:
            _set_str_attr(obj, "H5PATH", h5path)
        return obj

    def _empty(self, parent: Any, name: str, cls: str, shape: tuple[int, ...]) -> h5py.Dataset:
        ds = _dataset(parent, name, np.array(shape, dtype=np.uint64))
        _set_str_attr(ds, "MATLAB_class", cls)
        ds.attrs.create("MATLAB_empty", np.uint8(1))
        return ds

    def _chars(self, parent: Any, name: str, value: str | list[str]) -> h5py.Dataset:
        rows = [value] if isinstance(value, str) else list(value)
        units = [np.frombuffer(r.encode("utf-16-le"), dtype="<u2") for r in rows]
        if len({u.size for u in units}) > 1:
            raise ValueError(f"{name}: char matrix rows differ in length")
        width = units[0].size if units else 0
        if not rows or width == 0:
            return self._empty(parent, name, "char", (0, 0) if value == "" else (len(rows), 0))
        matrix = np.stack(units).astype(np.uint16)  # MATLAB size rows x width
        ds = _dataset(parent, name, _hdf5_layout(matrix))
        _set_str_attr(ds, "MATLAB_class", "char")
        ds.attrs.create("MATLAB_int_decode", np.int32(2))
        return ds

    def _numeric(self, parent: Any, name: str, arr: np.ndarray) -> h5py.Dataset:
        if arr.dtype == bool:
            cls, data = "logical", arr.astype(np.uint8)
        elif arr.dtype in _CLASS_OF_DTYPE:
            cls, data = _CLASS_OF_DTYPE[arr.dtype], arr
        else:
            raise TypeError(f"{name}: cannot save dtype {arr.dtype}")
        if arr.size == 0:
            return self._empty(parent, name, cls, arr.shape)
        ds = _dataset(parent, name, _hdf5_layout(data))
        _set_str_attr(ds, "MATLAB_class", cls)
        if cls == "logical":
            ds.attrs.create("MATLAB_int_decode", np.int32(1))
        return ds

    def _struct(self, parent: Any, name: str, value: MatStruct, h5path: str | None) -> Any:
        if value.size == 0:
            ds = self._empty(parent, name, "struct", value.shape)
            _set_fields_attr(ds, value.fields)
            return ds
        group = _group(parent, name)
        _set_str_attr(group, "MATLAB_class", "struct")
        _set_fields_attr(group, value.fields)
        if value.shape == (1, 1):
            # MATLAB's H5PATH of a 1x1 struct's children: parent's H5PATH (or "/") + its name
            child_path = (h5path or "/") + name
            for field in value.fields:
                self.write(group, field, value[0][field], h5path=child_path)
        else:
            for field in value.fields:  # #refs# allocated field by field
                self._ref_dataset(group, field, value.values(field), value.shape)
        return group


# --------------------------------------------------------------------------------------------
# Comparison of two values in the load_mat representation
# --------------------------------------------------------------------------------------------


def assert_same(a: Any, b: Any, where: str = "value") -> None:
    """Deep equality: same Python types, MATLAB sizes, dtypes and bit-identical data."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, MatStruct):
        assert a.fields == b.fields, f"{where}: fields {a.fields} != {b.fields}"
        assert a.shape == b.shape, f"{where}: size {a.shape} != {b.shape}"
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            for name in a.fields:
                assert_same(x[name], y[name], f"{where}({k + 1}).{name}")
    elif isinstance(a, MatCell):
        assert a.shape == b.shape, f"{where}: size {a.shape} != {b.shape}"
        for k, (x, y) in enumerate(zip(a.tolist_matlab(), b.tolist_matlab(), strict=True)):
            assert_same(x, y, f"{where}{{{k + 1}}}")
    elif isinstance(a, np.ndarray):
        assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), f"{where}: data differ"
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{k}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
