"""MAT-files v7.3 (HDF5, read with h5py) into the representation of
:mod:`porting.converters.matfile.values`: MATLAB classes from the ``MATLAB_class`` attributes,
cells and structs through object references (loops and depth bounded), shapes transposed back
to MATLAB's column-major order."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .values import (
    H5_INTERNAL,
    NUMERIC_CLASSES,
    MatCell,
    MatFormatError,
    MatStruct,
    fail,
    native,
    object_message,
    one_line,
)


def open_h5(path: str | os.PathLike[str]) -> Any:
    """The HDF5 file of a v7.3 MAT-file, opened read-only (an ``h5py.File``)."""
    import h5py

    try:
        return h5py.File(os.fspath(path), "r")
    except Exception as exc:
        raise fail(path, f"corrupt or truncated MAT v7.3 (HDF5) file ({one_line(exc)})") from exc


def load_h5(path: str | os.PathLike[str], names: list[str] | None) -> dict[str, Any]:
    with open_h5(path) as f:
        reader = _H5Reader(f, path)
        out: dict[str, Any] = {}
        for name in h5_variables(f, path):
            if names is not None and name not in names:
                continue
            try:
                out[name] = reader.read(f[name], name)
            except MatFormatError:
                raise
            except Exception as exc:  # h5py/HDF5 errors on damaged files
                raise fail(path, f"variable {name!r}: corrupt or truncated data "
                                  f"({type(exc).__name__}: {one_line(exc)})") from exc
        return out


def h5_variables(f: Any, path: str | os.PathLike[str]) -> list[str]:
    """Root members that are variables (MATLAB lists them in name order)."""
    try:
        return [k for k in f.keys() if k not in H5_INTERNAL]
    except Exception as exc:
        raise fail(path, f"corrupt MAT v7.3 (HDF5) file ({one_line(exc)})") from exc


def _has_attr(obj: Any, key: str) -> bool:
    import h5py

    return bool(h5py.h5a.exists(obj.id, key.encode()))


def _attr_str(obj: Any, key: str) -> str | None:
    """A string attribute (fixed or variable length) as str, or None when absent."""
    import h5py

    if not _has_attr(obj, key):
        return None
    aid = h5py.h5a.open(obj.id, key.encode())
    tid = aid.get_type()
    if isinstance(tid, h5py.h5t.TypeStringID) and not tid.is_variable_str() and not aid.shape:
        # the usual fixed-length scalar, read raw (much faster than obj.attrs[key])
        buf = np.empty((), dtype=f"S{tid.get_size()}")
        aid.read(buf, mtype=tid)
        return bytes(buf[()]).decode("ascii", errors="replace")
    value = obj.attrs[key]
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else b""
    if isinstance(value, bytes | np.bytes_):
        return value.decode("ascii", errors="replace")
    return str(value)


def _attr_int(obj: Any, key: str) -> int | None:
    if not _has_attr(obj, key):
        return None
    return int(np.asarray(obj.attrs[key]).ravel()[0])


def _field_names(obj: Any) -> list[str] | None:
    """``MATLAB_fields``: a vlen sequence of 1-char strings per field."""
    if "MATLAB_fields" not in obj.attrs:
        return None
    names = []
    for entry in np.asarray(obj.attrs["MATLAB_fields"], dtype=object).ravel():
        if isinstance(entry, bytes | np.bytes_ | str):
            names.append(entry.decode("ascii") if isinstance(entry, bytes) else str(entry))
        else:
            names.append(b"".join(np.asarray(entry).ravel().tolist()).decode("ascii"))
    return names


def _matlab_shape(data: np.ndarray) -> np.ndarray:
    """HDF5 stores the MATLAB size reversed over column-major bytes: reverse the axes back."""
    data = data.T  # a view
    if data.ndim < 2:
        data = data.reshape(data.shape + (1,) * (2 - data.ndim), order="F")
    return data


_MAX_H5_DEPTH = 100  # nested cells/structs; MatConvNet files nest about 5 deep


class _H5Reader:
    """Recursive reader of MATLAB's HDF5 layout (see docs/MAT73.md of the project)."""

    def __init__(self, f: Any, path: str | os.PathLike[str]) -> None:
        self.f = f
        self.path = path
        # MATLAB writes each /#refs# object once and references it once: a damaged file
        # whose references loop or fan out would otherwise be read forever.
        # Every object read costs one unit (a reference back to the root or to /#refs# would
        # otherwise re-read the whole file per visit at the cost of one dereference).
        try:
            names: list[str] = []
            f.visit(names.append)
        except Exception as exc:  # h5py raises many types on damaged files
            raise fail(path, f"corrupt MAT v7.3 (HDF5) file ({one_line(exc)})") from exc
        self.budget = 2 * len(names) + 1000
        self.depth = 0
        # compared by HDF5 object identity: ``Group.name`` searches the file for a path
        # (19 ms per call on a ResNet's v7.3 file, 100 s per conversion)
        self.groups = {name: f[name] for name in ("/", "/#refs#") if name in f}

    def _deref(self, ref: Any, where: str) -> Any:
        import h5py

        if not ref:  # null reference: treat as []
            return np.zeros((0, 0))
        try:
            target = self.f[ref]
        except Exception as exc:
            raise fail(self.path, f"{where}: dangling object reference") from exc
        if not isinstance(target, h5py.Dataset | h5py.Group):
            raise fail(self.path, f"{where}: reference to a non-data object")
        for name, group in self.groups.items():  # MATLAB references data, never these
            if target == group:
                raise fail(self.path, f"{where}: object reference to the file's {name} "
                                       "group (damaged file)")
        if self.budget < 0 or self.depth >= _MAX_H5_DEPTH:
            raise fail(self.path, f"{where}: object references loop or are shared far more "
                                   "than MATLAB writes them (damaged file)")
        self.depth += 1
        try:
            return self.read(target, where)
        finally:
            self.depth -= 1

    def read(self, obj: Any, where: str) -> Any:
        import h5py

        if not _attr_int(obj, "MATLAB_empty"):  # MATLAB shares the canonical empty only
            self.budget -= 1
            if self.budget < 0:
                raise fail(self.path, f"{where}: object references loop or are shared far "
                                       "more than MATLAB writes them (damaged file)")
        cls = _attr_str(obj, "MATLAB_class")
        if _attr_int(obj, "MATLAB_object_decode") is not None or (
            cls is not None and cls not in NUMERIC_CLASSES
            and cls not in ("logical", "char", "cell", "struct", "canonical empty",
                            "function_handle")
        ):
            raise fail(self.path, object_message(where, str(cls)))
        if cls == "function_handle":
            raise fail(self.path, f"{where} is a function handle (not supported)")
        if isinstance(obj, h5py.Group):
            if "MATLAB_sparse" in obj.attrs:
                raise fail(self.path, f"{where} is a sparse matrix (not supported)")
            return self._read_struct_group(obj, where)
        if _attr_int(obj, "MATLAB_empty"):
            return self._read_empty(obj, cls, where)
        data = obj[()]
        if not isinstance(data, np.ndarray):
            data = np.asarray(data)
        if data.dtype.names is not None:
            if set(data.dtype.names) == {"real", "imag"}:
                raise fail(self.path, f"{where} is complex (not supported)")
            raise fail(self.path, f"{where}: unexpected compound data {data.dtype}")
        data = _matlab_shape(data)
        if cls == "char":
            return self._read_chars(data)
        if cls == "cell" or (cls is None and data.dtype == object):
            return MatCell(data.shape, [
                self._deref(r, f"{where}{{{k + 1}}}")
                for k, r in enumerate(data.ravel(order="F"))
            ])
        if cls == "logical":
            return data.astype(bool)
        if cls == "struct":
            raise fail(self.path, f"{where}: a non-empty struct stored as a dataset")
        if data.dtype.kind not in "biuf":
            raise fail(self.path, f"{where}: unsupported data of dtype {data.dtype}")
        if cls is not None and data.dtype != NUMERIC_CLASSES[cls]:
            data = data.astype(NUMERIC_CLASSES[cls])
        return native(data)

    @staticmethod
    def _read_chars(data: np.ndarray) -> str | list[str] | np.ndarray:
        codes = np.asarray(data, dtype=np.uint16)

        # MATLAB chars are UTF-16 code units: decode whole rows so surrogate pairs join up
        def row(units: np.ndarray) -> str:
            return units.astype("<u2").tobytes().decode("utf-16-le", errors="surrogatepass")

        if codes.ndim > 2:
            return np.vectorize(lambda u: chr(int(u)), otypes=["<U1"])(codes)
        if codes.shape[0] == 1:
            return row(codes[0])
        return [row(r) for r in codes]

    def _read_empty(self, obj: Any, cls: str | None, where: str) -> Any:
        # An empty value stores its MATLAB size (uint64, MATLAB order) instead of data.
        dims = tuple(int(n) for n in np.asarray(obj[()]).ravel())
        if len(dims) < 2:
            dims = dims + (0,) * (2 - len(dims))
        if cls in (None, "canonical empty", "double"):
            return np.zeros(dims, dtype=np.float64)
        if cls == "char":
            return [""] * dims[0] if dims[0] > 1 else ""
        if cls == "cell":
            return MatCell(dims)
        if cls == "struct":
            return MatStruct(_field_names(obj) or (), dims)
        if cls == "logical":
            return np.zeros(dims, dtype=bool)
        if cls in NUMERIC_CLASSES:
            return np.zeros(dims, dtype=NUMERIC_CLASSES[cls])
        raise fail(self.path, f"{where}: empty value of unsupported class {cls}")

    def _read_struct_group(self, group: Any, where: str) -> MatStruct:
        import h5py

        fields = _field_names(group)
        if fields is None:
            fields = list(group.keys())
        members = {}
        for field in fields:
            if field not in group:
                raise fail(self.path, f"{where}: struct field {field!r} is listed in "
                                       f"MATLAB_fields but missing")
            members[field] = group[field]
        # A struct array: one reference dataset per field, with no MATLAB_class of its own.
        is_array = bool(members) and all(
            isinstance(m, h5py.Dataset) and m.dtype == h5py.ref_dtype
            and "MATLAB_class" not in m.attrs
            for m in members.values()
        )
        if not is_array:
            element = {f: self.read(m, f"{where}.{f}") for f, m in members.items()}
            return MatStruct(fields, (1, 1), [element])
        refs = {f: _matlab_shape(m[()]) for f, m in members.items()}
        shape = next(iter(refs.values())).shape
        if any(r.shape != shape for r in refs.values()):
            raise fail(self.path, f"{where}: struct array fields have different sizes")
        flat = {f: r.ravel(order="F") for f, r in refs.items()}
        elements = [
            {f: self._deref(flat[f][k], f"{where}({k + 1}).{f}") for f in fields}
            for k in range(int(np.prod(shape)))
        ]
        return MatStruct(fields, shape, elements)
