"""Feature files given to ``validate --features``: one checked loader, one consistency check.

:func:`load_features` is the boundary where a feature file enters: whatever it returns is a
2-D (N x D, N, D >= 1), real, finite float32 tensor, or it raises :class:`FeatureError` naming
the file. Scoring a NaN silently changes mAP (one NaN moved Market-1501's from 34.63 to 29.11),
so non-finite values are refused, as are 0-d/1-d/N-d arrays, structured, object, boolean and
complex dtypes, and damaged ``.npy`` headers. :func:`check_features` then checks that query and
gallery have the same width and one row per image of their split.

Accepted files: ``.npy`` (NumPy, read without pickles) and anything else as a MAT-file
(v6/v7 via scipy, v7.3 via HDF5) holding ``ff`` (the authors' name) or exactly one 2-D array.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["FeatureError", "load_features", "check_features"]


class FeatureError(ValueError):
    """A feature file that cannot be scored (the message names the file)."""


def _read_npy(path: Path) -> np.ndarray:
    """Read a ``.npy`` after checking its header against the file size (no pickles, no
    allocation of a size the file does not hold)."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged header's text can warn when parsed
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            else:
                raise FeatureError(f"{path}: unsupported .npy format version {version}")
            offset = f.tell()
    except FeatureError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError, SyntaxError, TokenError..
        raise FeatureError(f"{path}: not a valid .npy file (damaged header: "
                           f"{_one_line(exc)})") from None
    _check_dtype(path, dtype)
    _check_shape(path, shape)
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = path.stat().st_size
    if size - offset < need:
        raise FeatureError(f"{path}: header says {shape} {dtype} ({need} bytes) but the file "
                           f"holds {size - offset} bytes of data (truncated?)")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise FeatureError(f"{path}: not a readable .npy file ({_one_line(exc)})") from None
    del fortran
    return arr


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _check_dtype(path: Path | str, dtype: np.dtype) -> None:
    if dtype.fields is not None or dtype.kind == "V":
        raise FeatureError(f"{path}: structured dtype {dtype}; features must be a plain "
                           "numeric N x D array")
    if dtype.kind == "c":
        raise FeatureError(f"{path}: complex values ({dtype}); features must be real")
    if dtype.kind == "b":
        raise FeatureError(f"{path}: boolean array; features must be numbers")
    if dtype.kind not in "fiu":
        raise FeatureError(f"{path}: dtype {dtype} is not numeric; features must be an N x D "
                           "array of numbers")


def _check_shape(path: Path | str, shape: Sequence[int]) -> None:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2:
        raise FeatureError(f"{path}: a {len(shape)}-d array of shape {shape}; features must be "
                           "2-D, one row per image (N x D)")
    if min(shape) < 1:
        raise FeatureError(f"{path}: empty feature array {shape} (N x D with N, D >= 1)")


def _pick_mat_array(path: Path, data: dict[str, Any]) -> Any:
    if "ff" in data:
        return data["ff"], "ff"
    arrays = [(k, v) for k, v in data.items() if isinstance(v, np.ndarray)
              and v.dtype.kind in "fiucb" and v.ndim == 2]
    if len(arrays) != 1:
        raise FeatureError(f"{path}: no 'ff' variable and {len(arrays)} 2-D numeric arrays "
                           f"(variables: {sorted(data)[:8]})")
    return arrays[0][1], arrays[0][0]


def _read_mat_here(path: Path) -> np.ndarray:
    """The feature array of a MAT-file, through the project's MAT reader (which runs scipy's
    MAT v5 reader where its crash on a damaged file cannot take the process down)."""
    from porting.converters.matfile import MatCell, MatFormatError, load_mat

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = load_mat(path)
    except MatFormatError as exc:
        msg = str(exc).strip().splitlines()[0]
        raise FeatureError(msg if str(path) in msg else f"{path}: {msg}") from None
    except MemoryError:
        raise FeatureError(f"{path}: too large to read into memory") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file must still be one line
        raise FeatureError(f"{path}: not a readable MAT-file ({_one_line(exc)})") from None
    arr, name = _pick_mat_array(path, data)
    if isinstance(arr, MatCell) or not isinstance(arr, np.ndarray):
        raise FeatureError(f"{path}: variable {name!r} is a {type(arr).__name__}, not a "
                           "numeric N x D array")
    _check_dtype(f"{path}: variable {name!r}", arr.dtype)
    return arr


def load_features(path: str | os.PathLike) -> torch.Tensor:
    """Read a feature file as an N x D float32 tensor; :class:`FeatureError` (naming the file)
    unless it is a 2-D real array of finite numbers."""
    p = Path(path)
    if not p.exists():
        raise FeatureError(f"{path}: no such file")
    if not p.is_file():
        raise FeatureError(f"{path}: not a file")
    arr = _read_npy(p) if p.suffix.lower() == ".npy" else _read_mat_here(p)
    _check_dtype(p, arr.dtype)
    _check_shape(p, arr.shape)
    bad = ~np.isfinite(arr) if arr.dtype.kind == "f" else None
    if bad is not None and bad.any():
        r, c = np.argwhere(bad)[0]
        raise FeatureError(f"{path}: {int(bad.sum())} non-finite value(s) (NaN/Inf), the first "
                           f"at row {r + 1}, column {c + 1}; scoring them would silently change "
                           "the ranking")
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise FeatureError(f"{path}: values beyond the float32 range (|x| > 3.4e38)")
    return torch.from_numpy(out)


def check_features(query: torch.Tensor, gallery: torch.Tensor, paths: Sequence[str],
                   n_query: int | None = None, n_gallery: int | None = None,
                   names: Sequence[str] = ("query", "gallery")) -> None:
    """Query and gallery features of the same width, with one row per image of their split
    (``n_query`` / ``n_gallery`` when known); :class:`FeatureError` naming the file."""
    if query.shape[1] != gallery.shape[1]:
        raise FeatureError(f"{paths[1]}: {gallery.shape[1]} values per row, but {paths[0]} has "
                           f"{query.shape[1]}; {names[0]} and {names[1]} features must have the "
                           "same width")
    for feats, n, path, name in ((query, n_query, paths[0], names[0]),
                                 (gallery, n_gallery, paths[1], names[1])):
        if n is not None and feats.shape[0] != n:
            raise FeatureError(f"{path}: {feats.shape[0]} rows but the dataset's {name} has "
                               f"{n} images (one row per image, in the dataset's file order)")
