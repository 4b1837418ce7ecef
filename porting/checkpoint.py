"""The project's checkpoint format: weights plus everything needed to use them faithfully.

A checkpoint is a plain dict saved with ``torch.save`` and read back with
``torch.load(weights_only=True)`` (no pickled code), or, when the file name ends in
``.safetensors``, the same dict as a safetensors file: its tensors as they are and every other
field as JSON metadata (:mod:`porting.checkpoint_safetensors`). Like timm's pretrained configs
it carries the preprocessing (input size, mean, colour order, resize method) and the
descriptor recipe, and ``measurements`` records what was measured on it (``compare``,
``validate --record``: :func:`record_measurement`), which the model card states.

:func:`load_checkpoint` is the one boundary where a checkpoint file enters: it reads it without
unpickling code, then checks its whole schema before anything is built (:func:`check_schema`):
field types, tensor dtypes, graph structure, layer attributes and parameter ranks, the
preprocessing's input size, non-finite parameters, and an estimate of the memory that building
the model and one probe forward would take. Every refusal is a :class:`CheckpointError` naming
the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from typing import Any

import torch

from porting.checkpoint_safetensors import (
    is_safetensors_path,
    looks_like_safetensors,
    read_safetensors,
    write_safetensors,
)
from porting.checkpoint_schema import (
    CheckpointError,
    check_schema,
    estimate_memory,
    resolve_memory_limit,
)
from porting.outputs import atomic_write

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "atomic_write",
    "check_schema",
    "describe_file",
    "estimate_memory",
    "load_checkpoint",
    "make_checkpoint",
    "read_checkpoint",
    "record_measurement",
    "resolve_memory_limit",
    "save_checkpoint",
    "sha256_file",
]

FORMAT = "reid-porting"
VERSION = 1



def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def make_checkpoint(
    state_dict: dict[str, torch.Tensor],
    *,
    arch: dict[str, Any] | None = None,
    graph: dict[str, Any] | None = None,
    preprocess: dict[str, Any] | None = None,
    recipe: str | None = None,
    source: dict[str, Any] | None = None,
    converter: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a checkpoint dict; ``arch`` (a canonical model spec) and/or ``graph``."""
    if arch is None and graph is None:
        raise ValueError("a checkpoint needs an 'arch' spec or a 'graph'")
    return {
        "format": FORMAT,
        "version": VERSION,
        "arch": arch,
        "graph": graph,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
        "preprocess": preprocess,
        "recipe": recipe,
        "source": source or {},
        "converter": converter or {},
        "meta": meta or {},
    }


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any], *,
                    safetensors: bool | None = None) -> None:
    """Atomically write a checkpoint made by :func:`make_checkpoint`: a safetensors file when
    ``path`` ends in ``.safetensors`` (or ``safetensors=True``), else ``torch.save``'s zip."""
    if safetensors is None:
        safetensors = is_safetensors_path(path)
    if safetensors:
        atomic_write(path, lambda tmp: write_safetensors(tmp, checkpoint))
    else:
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def record_measurement(path: str | os.PathLike, key: str, value: Any) -> None:
    """Record ``measurements[key] = value`` in the checkpoint at ``path`` and rewrite it
    atomically in the format it has (``value``: JSON-able, stored as its JSON round trip).

    What a model card states about a checkpoint (``compare``'s agreement, ``validate``'s
    published figures) is read from these measurements, never from constants."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"a measurement key must be a non-empty string, got {key!r}")
    try:
        value = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"measurement {key!r} is not JSON-able ({exc})") from None
    ckpt = read_checkpoint(path)
    measurements = ckpt.get("measurements") or {}
    if not isinstance(measurements, dict):
        raise CheckpointError(f"{path}: measurements: expected a dict, got "
                              f"{type(measurements).__name__}")
    ckpt["measurements"] = {**measurements, key: value}
    save_checkpoint(path, ckpt, safetensors=_is_safetensors_file(path))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def describe_file(path: str | os.PathLike) -> str:
    """What a file that is not a PyTorch checkpoint is, in words (from its first bytes)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or type(exc).__name__})"
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive, but damaged, truncated or not written by torch.save"
    if looks_like_safetensors(head):
        return "it is a safetensors file, but damaged or truncated"
    if head.startswith(b"\x93NUMPY"):
        return "it is a NumPy .npy array"
    if head.startswith(b"MATLAB") or head.startswith(b"\x89HDF\r\n\x1a\n") or \
            head[512 - 8:] == b"\x89HDF\r\n\x1a\n":
        return ("it is a MATLAB MAT-file or HDF5 file (convert a MatConvNet model with "
                "convert-matconvnet)")
    if head[:1] == b"\x80":
        return "it is a bare Python pickle or a pre-1.6 PyTorch file, not a zip checkpoint"
    if head.startswith(b"\x1f\x8b"):
        return "it is gzip-compressed (decompress it first)"
    if head.lstrip().startswith((b"name:", b"layer", b"input", b"layers")):
        return "it looks like a Caffe prototxt (convert it with convert-caffe)"
    try:
        head.decode("utf-8")
        return "it is a text file"
    except UnicodeDecodeError:
        return "it is neither a zip archive (torch.save) nor another format this library reads"


def _is_safetensors_file(path: str | os.PathLike) -> bool:
    with open(path, "rb") as f:
        return looks_like_safetensors(f.read(9))


def _read(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` or the safetensors reader, turned into one-line
    errors (never unpickles code)."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if looks_like_safetensors(head):
        return read_safetensors(path)
    if is_safetensors_path(path):
        raise CheckpointError(f"{path}: not a safetensors file: {describe_file(path)}")
    if not head.startswith(b"PK\x03\x04") and head[:1] != b"\x80":
        # torch.load would hand any other bytes to its (restricted) unpickler and report an
        # "unsupported operand": say what the file is instead.
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint: "
                              f"{describe_file(path)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except MemoryError:
        raise CheckpointError(f"{path}: too large to read into memory") from None
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        text = str(exc)
        bad = next((line.strip() for line in text.splitlines() if "GLOBAL" in line), "")
        if bad:
            detail = f": {bad}"
            raise CheckpointError(
                f"{path}: holds pickled Python objects that a reid-porting checkpoint never "
                f"contains; refused without unpickling them{detail}") from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint: "
                              f"{describe_file(path)}") from None


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict of a ``.pth`` or ``.safetensors`` file (either is recognised by its
    content), its format and version checked but not the rest of its schema."""
    ckpt = _read(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        hint = ""
        if isinstance(ckpt, dict) and any(isinstance(v, torch.Tensor) for v in ckpt.values()):
            hint = " (it looks like a bare state_dict from another tool)"
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint{hint}")
    version = ckpt.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {version!r} is newer than this library supports "
            f"({VERSION}); upgrade reid-porting"
        )
    if not isinstance(ckpt.get("measurements", {}), dict):
        raise CheckpointError(f"{path}: measurements: expected a dict, got "
                              f"{type(ckpt['measurements']).__name__}")
    return ckpt


def load_checkpoint(path: str | os.PathLike, *, allow_nonfinite: bool = False,
                    memory_limit: int | None = None) -> dict[str, Any]:
    """Read a checkpoint (``.pth`` or ``.safetensors``) without unpickling code and check its
    schema (:func:`check_schema`), the same for both formats.

    ``allow_nonfinite`` accepts NaN/Inf parameters; ``memory_limit`` (bytes; default
    ``$REID_PORTING_MEMORY_LIMIT`` or 8 GiB) bounds the estimated model + probe memory.
    """
    ckpt = read_checkpoint(path)
    check_schema(ckpt, path, allow_nonfinite=allow_nonfinite, memory_limit=memory_limit)
    return ckpt
