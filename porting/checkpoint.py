"""The project's checkpoint format: weights plus everything needed to use them faithfully.

A checkpoint is a plain dict saved with ``torch.save`` and read back with
``torch.load(weights_only=True)`` (no pickled code). Like timm's pretrained configs it carries
the preprocessing (input size, mean, colour order, resize method) and the descriptor recipe.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "reid-porting"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a usable reid-porting checkpoint."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: no partial file on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> None:
    """Atomically write a checkpoint made by :func:`make_checkpoint`."""
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a checkpoint without unpickling code."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({msg})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        hint = ""
        if isinstance(ckpt, dict) and any(isinstance(v, torch.Tensor) for v in ckpt.values()):
            hint = " (it looks like a bare state_dict from another tool)"
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint{hint}")
    version = ckpt.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {version!r} is newer than this library supports "
            f"({VERSION}); upgrade reid-porting"
        )
    if not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path}: checkpoint has no 'state_dict'")
    return ckpt
