"""Run the MAT v5 reader in a forked child, and bring its result back without copying.

scipy's level-5 reader is C code that a damaged file can crash (SIGSEGV), taking the whole
converter with it, which no ``except`` turns into one line. Where ``fork`` exists the file
is read (and turned into :mod:`~porting.converters.matfile.values`) in a child.
The child sends back the value's structure as plain containers (tuples, lists, dicts, str
and numbers: unpickled with no class allowed at all) and every array's bytes written once
into a shared-memory file that the parent maps, so the arrays arrive as views of it: no copy
through the pipe and no second copy in the parent. Without ``memfd_create`` the bytes go
through the pipe.
"""

from __future__ import annotations

import faulthandler
import io
import mmap
import os
import pickle
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from .values import MatCell, MatFormatError, MatStruct, fail

#: Shared memory allocated ahead (up to the file's size) while the child reads.
_PREALLOCATE = 1 << 30


def run_isolated(read: Callable[[], dict[str, Any]], path: str | os.PathLike[str]
                 ) -> dict[str, Any]:
    """``read()``, run in a forked child where fork exists; a crash of the child is one
    :class:`MatFormatError` naming ``path``."""
    if not hasattr(os, "fork"):
        return read()
    shared = os.memfd_create("reid-porting-mat") if hasattr(os, "memfd_create") else None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: read, send b"A" + structure or b"E" + message, leave
        code = 0
        try:
            os.close(read_end)
            faulthandler.disable()  # a crash here is reported by the parent, in one line
            try:
                payload = b"A" + _send(read(), shared)
            except MatFormatError as exc:
                payload = b"E" + str(exc).encode("utf-8", "replace")
            with os.fdopen(write_end, "wb") as handle:
                handle.write(payload)
        except BaseException:  # noqa: BLE001 - nothing may escape a forked child
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    status = None
    try:
        if shared is not None:  # while the child reads: its pages, allocated here in parallel
            try:
                os.posix_fallocate(shared, 0, min(os.path.getsize(path), _PREALLOCATE))
            except OSError:
                pass
        with os.fdopen(read_end, "rb") as handle:
            payload = handle.read()
        if payload[:1] == b"A":  # complete: unpacked while the child's exit is under way
            try:
                return _receive(payload[1:], shared)
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError,
                    IndexError, struct.error, OSError) as exc:
                raise fail(path, f"the MAT v5 reader's result was refused ({exc})") from None
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status) or not payload:
            how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else "no result"
            raise fail(path, f"corrupt MAT-file (the MAT v5 reader crashed on it: {how})")
        raise MatFormatError(payload[1:].decode("utf-8", "replace"))
    finally:
        if status is None:
            os.waitpid(pid, 0)
        if shared is not None:
            os.close(shared)


# --- the child's side ---------------------------------------------------------------------


def _pack(value: Any, arrays: list[np.ndarray]) -> Any:
    """The representation as tagged tuples; arrays are replaced by their index in
    ``arrays`` (C-contiguous; a Fortran-ordered one is stored transposed)."""
    if isinstance(value, MatCell):
        return ("c", value.shape, [_pack(e, arrays) for e in value.tolist_matlab()])
    if isinstance(value, MatStruct):
        return ("s", value.fields, value.shape,
                [{f: _pack(v, arrays) for f, v in value[k].items()} for k in range(value.size)])
    if isinstance(value, np.ndarray):
        fortran = value.flags.f_contiguous and not value.flags.c_contiguous
        arrays.append(value.T if fortran else np.ascontiguousarray(value))
        return ("a", value.dtype.str, value.shape, fortran, len(arrays) - 1)
    if isinstance(value, list):
        return ("l", [_pack(e, arrays) for e in value])
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise MatFormatError(f"unexpected value of type {type(value).__name__}")


def _send(value: dict[str, Any], shared: int | None) -> bytes:
    arrays: list[np.ndarray] = []
    tree = {name: _pack(v, arrays) for name, v in value.items()}
    raw = [a.reshape(-1).view(np.uint8) for a in arrays]
    if shared is None:
        return pickle.dumps((tree, [r.tobytes() for r in raw]), protocol=5)
    with os.fdopen(os.dup(shared), "wb") as out:
        for r in raw:
            out.write(memoryview(r))
    sizes = [r.nbytes for r in raw]
    return struct.pack(f"<Q{len(sizes)}Q", len(sizes), *sizes) + pickle.dumps(tree, protocol=5)


# --- the parent's side --------------------------------------------------------------------


class _Plain(pickle.Unpickler):
    """Unpickles plain containers only: naming any class or function is refused, so even a
    child subverted by a damaged file could not make the parent run code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the MAT v5 reader returned {module}.{name}")


def _receive(data: bytes, shared: int | None) -> dict[str, Any]:
    if shared is None:
        tree, blobs = _Plain(io.BytesIO(data)).load()
        views = [memoryview(bytearray(b)) for b in blobs]  # writable, like loadmat's
    else:
        (count,) = struct.unpack_from("<Q", data)
        sizes = struct.unpack_from(f"<{count}Q", data, 8)
        total = sum(sizes)
        if total > os.fstat(shared).st_size:
            raise ValueError(f"{total} bytes announced, {os.fstat(shared).st_size} written")
        os.ftruncate(shared, total)  # what was allocated ahead beyond the arrays is freed
        # the child is gone: the file is ours alone, mapped writable (as loadmat's arrays
        # are), no copy-on-write
        flags = mmap.MAP_SHARED
        whole = (memoryview(mmap.mmap(shared, total, flags=flags)) if total
                 else memoryview(bytearray()))
        ends = np.cumsum(sizes, dtype=np.int64).tolist()
        views = [whole[b - n : b] for b, n in zip(ends, sizes, strict=True)]
        tree = _Plain(io.BytesIO(data[8 + 8 * count :])).load()
    return {name: _unpack(node, views) for name, node in tree.items()}


def _unpack(node: Any, views: list[memoryview]) -> Any:
    if not isinstance(node, tuple):
        return node
    tag = node[0]
    if tag == "a":
        _, dtype, shape, fortran, index = node
        dt = np.dtype(dtype)
        if dt.hasobject or dt.names is not None:
            raise ValueError(f"array of dtype {dt}")
        data = np.frombuffer(views[index], dtype=dt)
        return data.reshape(shape[::-1]).T if fortran else data.reshape(shape)
    if tag == "l":
        return [_unpack(e, views) for e in node[1]]
    if tag == "c":
        return MatCell(node[1], [_unpack(e, views) for e in node[2]])
    if tag == "s":
        return MatStruct(node[1], node[2], [{f: _unpack(v, views) for f, v in e.items()}
                                            for e in node[3]])
    raise ValueError(f"unknown node {tag!r}")
