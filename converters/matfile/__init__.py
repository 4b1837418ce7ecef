"""Read MATLAB MAT-files (level 5 = ``-v6``/``-v7``, and ``-v7.3`` = HDF5) into one representation.

Data path: **.mat file** -> :func:`load_mat` (here: :mod:`.v5` reads level 5 with scipy in
the forked child of :mod:`.isolated`, :mod:`.v73` reads HDF5 with h5py; both return the values
of :mod:`.values`) -> :mod:`porting.converters.matconvnet` (checked spec -> graph ->
checkpoint), and the feature files of :mod:`porting.validation`.

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

import os
import struct
from collections.abc import Iterable
from typing import Any

from .v5 import load_v5
from .values import (
    INTERNAL_VARIABLES,
    MatCell,
    MatFormatError,
    MatStruct,
    fail,
    to_python,
)

__all__ = [
    "MatFormatError",
    "MatStruct",
    "MatCell",
    "load_mat",
    "mat_version",
    "mat_variables",
    "to_python",
]


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
        raise fail(path, f"cannot open: {exc.strerror or exc}") from exc
    if len(head) == 128 and head[126:128] in (b"IM", b"MI"):
        order = "<" if head[126:128] == b"IM" else ">"
        (version,) = struct.unpack(order + "H", head[124:126])
        if version == 0x0100:
            return "5"
        if version == 0x0200:
            return "7.3"
        raise fail(path, f"unknown MAT-file version 0x{version:04x} in the header")
    if _looks_like_v4(head):
        raise fail(path, "MAT v4 files are not supported; re-save with save(file, ..., '-v7')")
    if head.startswith(b"\x89HDF"):
        raise fail(path, "HDF5 file without a MATLAB 7.3 header (not a MAT-file)")
    if len(head) < 128:
        raise fail(path, f"not a MAT-file (only {len(head)} bytes, a MAT header is 128)")
    raise fail(path, "not a MAT-file (no MATLAB level-5 or 7.3 header)")


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def mat_variables(path: str | os.PathLike[str]) -> list[str]:
    """Names of the variables in a MAT-file, without reading their values."""
    version = mat_version(path)
    if version == "7.3":
        from .v73 import h5_variables, open_h5

        with open_h5(path) as f:
            return h5_variables(f, path)
    import scipy.io

    try:
        found = scipy.io.whosmat(os.fspath(path))
    except Exception:
        # scipy cannot list some files (e.g. objects), while loading reports them precisely.
        return list(load_mat(path))
    return [name for name, _, _ in found if name not in INTERNAL_VARIABLES]


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
        from .v73 import load_h5

        return load_h5(path, names)
    return load_v5(path, names)
