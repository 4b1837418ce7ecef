"""The ``.safetensors`` form of a checkpoint: the tensors as they are, everything else as JSON.

A safetensors file is a JSON header (tensor names, dtypes, shapes, offsets, and a
``__metadata__`` table of strings) followed by raw little-endian bytes: opening one runs no code
and any framework reads it. The checkpoint dict maps onto it as follows:

* each tensor of the checkpoint is stored once, under its ``state_dict`` key (``params.conv1f``)
  or, outside the state_dict, under its field path (``training/optimizer/state/0/...``). Two
  entries that are the same tensor (the same view of one storage) stay one tensor;
* every other top-level field (``arch``, ``graph``, ``preprocess``, ``recipe``, ``source``,
  ``measurements``...) is one metadata entry holding its value as a JSON string, in which a
  tensor is ``{"__tensor__": name}``; tuples, dicts with non-string keys and non-finite floats
  are tagged the same way (``__tuple__``, ``__items__``, ``__float__``) so that the checkpoint
  round-trips exactly;
* ``reid_porting.safetensors`` holds the layout version (:data:`LAYOUT_VERSION`).

Reading refuses, in one line naming the file and the entry: a metadata value that is not strict
JSON, a tag it does not know, a tensor of a dtype outside :data:`DTYPES`, a tensor that no
field refers to or a reference to a tensor that is not there, and a layout version it does not
know. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
from collections.abc import Mapping
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from porting.checkpoint_schema import CheckpointError

__all__ = ["DTYPES", "LAYOUT_KEY", "LAYOUT_VERSION", "SUFFIX", "is_safetensors_path",
           "looks_like_safetensors", "read_safetensors", "write_safetensors"]

SUFFIX = ".safetensors"
LAYOUT_KEY = "reid_porting.safetensors"
LAYOUT_VERSION = 1
#: The dtypes a checkpoint's tensors may have: floating-point parameters and statistics, and
#: int64 counters (BatchNorm's ``num_batches_tracked``, optimizer steps).
DTYPES: dict[str, torch.dtype] = {"F64": torch.float64, "F32": torch.float32,
                                  "F16": torch.float16, "BF16": torch.bfloat16,
                                  "I64": torch.int64}
_TAGS = ("__tensor__", "__tuple__", "__items__", "__float__")
_MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header


def _dunder(key: str) -> bool:
    """A key of the tags' form: a dict holding one is stored as ``__items__``."""
    return key.startswith("__") and key.endswith("__")


def is_safetensors_path(path: str | os.PathLike) -> bool:
    """Whether a file name asks for the safetensors form (the writers dispatch on it)."""
    return os.fspath(path).endswith(SUFFIX)


def looks_like_safetensors(head: bytes) -> bool:
    """Whether a file's first bytes are a safetensors header: a little-endian u64 length
    followed by a JSON object."""
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= _MAX_HEADER and head[8:9] == b"{"


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

class _Encoder:
    """Checkpoint values to JSON values, collecting the tensors (each once) on the way."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self._names: dict[tuple[Any, ...], str] = {}

    def tensor(self, t: torch.Tensor, name: str) -> dict[str, str]:
        t = t.detach()
        if t.layout != torch.strided or t.is_quantized or t.device.type == "meta":
            raise ValueError(f"{name}: a {t.layout} tensor cannot be stored (dense only)")
        code = next((c for c, d in DTYPES.items() if d == t.dtype), None)
        if code is None:
            raise ValueError(f"{name}: dtype {t.dtype} is not one a checkpoint stores "
                             f"({', '.join(str(d) for d in DTYPES.values())})")
        identity = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape),
                    t.stride(), t.dtype, t.device) if t.untyped_storage().nbytes() else None
        if identity is not None and identity in self._names:
            return {"__tensor__": self._names[identity]}  # the same tensor: stored once
        unique, i = name, 1
        while unique in self.tensors:
            i += 1
            unique = f"{name}#{i}"
        self.tensors[unique] = t
        if identity is not None:
            self._names[identity] = unique
        return {"__tensor__": unique}

    def value(self, v: Any, path: str) -> Any:
        if isinstance(v, torch.Tensor):
            return self.tensor(v, path)
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float):
            return v if math.isfinite(v) else {"__float__": repr(v)}
        if isinstance(v, tuple):
            return {"__tuple__": [self.value(x, f"{path}/{i}") for i, x in enumerate(v)]}
        if isinstance(v, list):
            return [self.value(x, f"{path}/{i}") for i, x in enumerate(v)]
        if isinstance(v, Mapping):
            if all(isinstance(k, str) and not _dunder(k) for k in v):
                return {k: self.value(x, f"{path}/{k}") for k, x in v.items()}
            return {"__items__": [[self.value(k, f"{path}/key"), self.value(x, f"{path}/{k}")]
                                  for k, x in v.items()]}
        raise ValueError(f"{path}: a {type(v).__name__} cannot be stored as JSON")


def _own_storage(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Distinct tensors that overlap one storage (slices of a reader's buffer) copied apart:
    safetensors stores each tensor's bytes separately and refuses shared storage."""
    by_storage: dict[tuple[int, torch.device], list[str]] = {}
    for name, t in tensors.items():
        if t.untyped_storage().nbytes():
            by_storage.setdefault((t.untyped_storage().data_ptr(), t.device), []).append(name)
    out = {}
    for name, t in tensors.items():
        group = by_storage.get((t.untyped_storage().data_ptr(), t.device), [])
        t = t.cpu()
        out[name] = t.clone(memory_format=torch.contiguous_format) if len(group) > 1 \
            else t.contiguous()
    return out


def write_safetensors(path: str | os.PathLike, checkpoint: Mapping[str, Any]) -> None:
    """Write ``checkpoint`` (a dict of :func:`porting.checkpoint.make_checkpoint`) to ``path``
    in the safetensors form (not atomic by itself: :func:`porting.checkpoint.save_checkpoint`
    calls it on a temporary file)."""
    enc = _Encoder()
    meta = {LAYOUT_KEY: json.dumps(LAYOUT_VERSION)}
    sd = checkpoint.get("state_dict")
    if isinstance(sd, Mapping):  # its tensors are named by their keys, first
        meta["state_dict"] = json.dumps({k: enc.tensor(t, k) if isinstance(t, torch.Tensor)
                                         else enc.value(t, k) for k, t in sd.items()},
                                        allow_nan=False)
    for key, value in checkpoint.items():
        if not isinstance(key, str) or key == LAYOUT_KEY:
            raise ValueError(f"checkpoint field {key!r} cannot be a safetensors metadata key")
        if key == "state_dict" and key in meta:
            continue
        meta[key] = json.dumps(enc.value(value, key), allow_nan=False)
    save_file(_own_storage(enc.tensors), os.fspath(path), metadata=meta)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _Decoder:
    """JSON values back to checkpoint values; every tag checked, every tensor used once."""

    def __init__(self, path: str | os.PathLike, tensors: Mapping[str, torch.Tensor]) -> None:
        self.path, self.tensors, self.used = path, tensors, set()

    def fail(self, field: str, message: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: safetensors metadata {field!r}: {message}")

    def value(self, v: Any, field: str) -> Any:
        if isinstance(v, list):
            return [self.value(x, field) for x in v]
        if not isinstance(v, dict):
            return v
        tags = [t for t in _TAGS if t in v]
        if not tags:
            bad = next((k for k in v if _dunder(k)), None)
            if bad is not None:
                raise self.fail(field, f"unknown tag {bad!r}")
            return {k: self.value(x, field) for k, x in v.items()}
        if len(v) != 1:
            raise self.fail(field, f"a tag object holds other keys: {sorted(v)[:4]}")
        tag, arg = tags[0], v[tags[0]]
        if tag == "__tensor__":
            if not isinstance(arg, str) or arg not in self.tensors:
                raise self.fail(field, f"refers to tensor {arg!r}, which the file does not hold")
            self.used.add(arg)
            return self.tensors[arg]
        if tag == "__tuple__" and isinstance(arg, list):
            return tuple(self.value(x, field) for x in arg)
        if tag == "__items__" and isinstance(arg, list) and \
                all(isinstance(p, list) and len(p) == 2 for p in arg):
            return {self.value(k, field): self.value(x, field) for k, x in arg}
        if tag == "__float__" and arg in ("nan", "inf", "-inf"):
            return float(arg)
        raise self.fail(field, f"malformed {tag} value {json.dumps(arg)[:40]}")


def _header(path: str | os.PathLike, f: Any) -> tuple[dict[str, str], list[str]]:
    """The metadata and the tensor names, the layout version and the dtypes checked."""
    meta = f.metadata() or {}
    names = list(f.keys())
    if meta.get("format") != json.dumps("reid-porting"):
        raise CheckpointError(f"{path}: a safetensors file without reid-porting metadata "
                              f"({len(names)} tensors, metadata keys {sorted(meta)[:5]}): not a "
                              "reid-porting checkpoint")
    layout = meta.get(LAYOUT_KEY)
    if layout != json.dumps(LAYOUT_VERSION):
        raise CheckpointError(f"{path}: safetensors layout version {layout!r} is not one this "
                              f"library reads ({LAYOUT_VERSION}); upgrade reid-porting")
    for name in names:
        code = f.get_slice(name).get_dtype()
        if code not in DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} has dtype {code}, which a "
                                  f"checkpoint never holds (allowed: {', '.join(DTYPES)})")
    return meta, names


def _read_tensors(path: str | os.PathLike, names: list[str]) -> dict[str, torch.Tensor]:
    """The tensors, each read straight into memory that PyTorch allocates (64-byte aligned).

    ``safe_open`` has checked the header (offsets in bounds, no overlap, sizes matching
    dtype x shape); its own tensors are views of the file's mmap at the file's offsets,
    8-byte aligned at best, and the CPU GEMM kernels take other code paths, with another
    float32 summation order, on unaligned weights: outputs would differ in the last bits from
    the same checkpoint read from a ``.pth``. Copying them out of the mmap page by page
    costs 4x ``torch.load``'s time; one ``readinto`` per tensor costs what it does."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
        out = {}
        for name in names:
            info = header[name]
            begin, end = info["data_offsets"]
            t = torch.empty(info["shape"], dtype=DTYPES[info["dtype"]])
            if end > begin:
                fh.seek(8 + n + begin)
                if fh.readinto(memoryview(t.view(-1).view(torch.uint8).numpy())) != end - begin:
                    raise CheckpointError(f"{path}: tensor {name!r} is truncated")
            out[name] = t
    return out


def _read_converted(path: str | os.PathLike, names: list[str]) -> dict[str, torch.Tensor]:
    """On a big-endian machine: the library's byte-swapped tensors, copied into aligned
    memory."""
    with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
        return {n: f.get_tensor(n).clone(memory_format=torch.contiguous_format) for n in names}


def read_safetensors(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict stored in a safetensors file, or a one-line
    :class:`CheckpointError`. Headers and dtypes are checked before any tensor is read."""
    try:
        with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
            meta, names = _header(path, f)
            fields: dict[str, Any] = {}
            for key, text in meta.items():
                if key == LAYOUT_KEY:
                    continue
                try:
                    fields[key] = json.loads(text, parse_constant=_no_constant)
                except (ValueError, RecursionError) as exc:
                    detail = str(exc).splitlines()[0][:80]
                    raise CheckpointError(
                        f"{path}: safetensors metadata {key!r} is not JSON ({detail}); refused "
                        "without interpreting it (a checkpoint's metadata is only ever "
                        "JSON, never pickled)") from None
        tensors = (_read_tensors(path, names) if sys.byteorder == "little" else
                   _read_converted(path, names))
    except SafetensorError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise CheckpointError(f"{path}: not a readable safetensors file ({detail})") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    dec = _Decoder(path, tensors)
    ckpt = {key: dec.value(v, key) for key, v in fields.items()}
    unused = [n for n in names if n not in dec.used]
    if unused:
        raise CheckpointError(f"{path}: tensor {unused[0]!r} is not referred to by any "
                              f"metadata field ({len(unused)} such tensors)")
    return ckpt
