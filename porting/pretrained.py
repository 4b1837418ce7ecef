"""The folder form of a checkpoint, laid out as the Hugging Face Hub and timm expect.

``save_pretrained(model_or_checkpoint, DIR)`` writes:

* ``model.safetensors``: the checkpoint itself (:mod:`porting.checkpoint_safetensors`), the one
  file :func:`from_pretrained` builds the model from;
* ``config.json``: the architecture and a timm ``pretrained_cfg``-style block (input size,
  interpolation, mean, std, colour order, crop, recipe, feature dimension, source), derived from
  the checkpoint for tools that read timm's config;
* ``README.md``: the model card (:mod:`porting.model_card`), its figures read from the
  checkpoint's recorded measurements.

``from_pretrained`` also takes a Hub repository id (``user/repo``) when ``huggingface_hub`` is
installed (``pip install reid-porting[hub]``); :func:`push_to_hub` uploads such a folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from porting.checkpoint import (
    CheckpointError,
    make_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from porting.checkpoint_safetensors import LAYOUT_VERSION
from porting.model_card import model_card
from porting.outputs import atomic_write, output_dir

__all__ = ["CONFIG", "WEIGHTS", "checkpoint_of", "config_of", "from_pretrained", "push_to_hub",
           "save_pretrained"]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
_HUB_HINT = "install the optional extra: pip install 'reid-porting[hub]'"


def checkpoint_of(obj: nn.Module | dict[str, Any] | str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict of a checkpoint (dict or file) or of a module that
    :func:`porting.load` or :func:`from_pretrained` built (its current weights)."""
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return read_checkpoint(obj)
    if not isinstance(obj, nn.Module):
        raise TypeError(f"expected a module, a checkpoint dict or a path, got "
                        f"{type(obj).__name__}")
    fields = getattr(obj, "checkpoint_fields", None)
    if not isinstance(fields, dict):
        raise ValueError(f"this {type(obj).__name__} was not loaded from a reid-porting "
                         "checkpoint, so its preprocessing and recipe are unknown: build a "
                         "checkpoint with porting.make_checkpoint(model.state_dict(), arch=..., "
                         "preprocess=..., recipe=...) and save that")
    from porting.graph import GraphModule

    fields = dict(fields)
    if not isinstance(obj, GraphModule):  # a canonical class: its own parameter names
        if fields.get("arch") is None:
            raise ValueError("a canonical module without an 'arch' spec cannot be saved")
        fields.pop("arch_map", None)
        fields["graph"] = None
    return {**fields, "state_dict": {k: v.detach().cpu().contiguous()
                                     for k, v in obj.state_dict().items()}}


def _mean_summary(mean: Any) -> Any:
    arr = np.asarray(mean, dtype=np.float64) if mean is not None else None
    if arr is None or arr.ndim == 1:
        return mean
    return {"image": list(arr.shape), "channel_mean": arr.reshape(-1, 3).mean(0).tolist(),
            "full": f"in {WEIGHTS}'s metadata ('preprocess')"}


def _feature_dim(ckpt: dict[str, Any]) -> tuple[int | None, str | None]:
    """The descriptor's length, measured by extracting one blank image (and why not)."""
    from porting.feature_extractor import FeatureExtractor
    from porting.loading import model_from_checkpoint

    pre = ckpt.get("preprocess") or {}
    size = pre.get("resize") or pre.get("input_size")
    if not size:
        return None, "the checkpoint has no preprocessing"
    try:
        model = model_from_checkpoint(ckpt)
        extractor = FeatureExtractor(model, device="cpu", batch_size=1)
        feats = extractor([np.zeros((int(size[0]), int(size[1]), 3), dtype=np.uint8)])
    except (ValueError, CheckpointError, RuntimeError, KeyError, TypeError) as exc:
        return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return int(feats.shape[-1]), None


def config_of(ckpt: dict[str, Any]) -> dict[str, Any]:
    """``config.json``: the architecture and a timm ``pretrained_cfg``-style block."""
    import porting

    arch, graph = ckpt.get("arch"), ckpt.get("graph")
    pre = ckpt.get("preprocess") or {}
    dim, why = _feature_dim(ckpt)
    size = pre.get("input_size")
    name = (arch or {}).get("name") or f"{(graph or {}).get('framework', '?')} graph"
    if arch and arch.get("name") == "siamese":
        name = f"siamese_{arch.get('trunk', {}).get('name', '?')}"
    cfg = {
        "input_size": [3, *size] if size else None,
        "interpolation": pre.get("resize_method"), "resize": pre.get("resize"),
        "crop": pre.get("crop"), "mean": _mean_summary(pre.get("mean")),
        "std": pre.get("std"), "colour_order": pre.get("colour"),
        "value_range": pre.get("value_range"), "flip": pre.get("flip"),
        "recipe": ckpt.get("recipe"), "num_features": dim, "source": ckpt.get("source") or {},
        "paper_ids": "arXiv:1611.05666",
    }
    return {
        "library_name": "reid-porting", "reid_porting_version": porting.__version__,
        "weights": {"file": WEIGHTS, "safetensors_layout": LAYOUT_VERSION,
                    "checkpoint_version": ckpt.get("version")},
        "architecture": name, "arch": arch,
        "graph": None if graph is None else {
            "framework": graph.get("framework"), "inputs": graph.get("inputs"),
            "outputs": graph.get("outputs"), "layers": len(graph.get("layers") or [])},
        "num_features": dim, **({"num_features_unknown": why} if dim is None else {}),
        "pretrained_cfg": cfg,
    }


def save_pretrained(obj: nn.Module | dict[str, Any] | str | os.PathLike,
                    directory: str | os.PathLike) -> Path:
    """Write ``model.safetensors``, ``config.json`` and the model card ``README.md`` into
    ``directory`` (each file atomically); returns the folder."""
    ckpt = checkpoint_of(obj)
    if ckpt.get("format") is None:  # a bare dict of make_checkpoint's fields
        ckpt = make_checkpoint(ckpt["state_dict"], **{k: ckpt.get(k) for k in (
            "arch", "graph", "preprocess", "recipe", "source", "converter", "meta")})
    config = config_of(ckpt)
    card = model_card(ckpt, config)
    with output_dir(directory) as out:
        save_checkpoint(out / WEIGHTS, ckpt, safetensors=True)
        text = json.dumps(config, indent=2, sort_keys=False) + "\n"
        atomic_write(out / CONFIG, lambda tmp: Path(tmp).write_text(text))
        atomic_write(out / CARD, lambda tmp: Path(tmp).write_text(card))
    return Path(directory)


def _local_folder(name: str | os.PathLike, revision: str | None,
                  cache_dir: str | os.PathLike | None, local_files_only: bool) -> Path:
    path = Path(name)
    if path.is_dir():
        return path
    text = os.fspath(name)
    if text.count("/") != 1 or text.startswith((".", "/")) or os.path.exists(text):
        raise CheckpointError(f"{name}: not a folder written by save_pretrained (and not a "
                              "Hub repository id user/name)")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(f"{name}: reading a Hub repository needs huggingface_hub: "
                              f"{_HUB_HINT}") from None
    try:
        return Path(snapshot_download(text, revision=revision, cache_dir=cache_dir,
                                      allow_patterns=[WEIGHTS, CONFIG, CARD],
                                      local_files_only=local_files_only))
    except Exception as exc:  # noqa: BLE001 - the Hub client's many network/cache errors
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{name}: cannot get the repository from the Hugging Face Hub "
                              f"({type(exc).__name__}: {detail})") from None


def from_pretrained(name: str | os.PathLike, canonical: bool | None = None,
                    device: str | torch.device = "cpu", *, exact: bool = False,
                    revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                    local_files_only: bool = False, **load_kwargs: Any) -> nn.Module:
    """The eval module of a :func:`save_pretrained` folder, or of a Hub repository id
    (``user/repo``, through ``huggingface_hub``: ``revision``, ``cache_dir`` and
    ``local_files_only`` are its). Built from ``model.safetensors`` exactly as
    :func:`porting.load` builds a checkpoint file (``load_kwargs`` are its)."""
    from porting.loading import load

    folder = _local_folder(name, revision, cache_dir, local_files_only)
    weights, config = folder / WEIGHTS, folder / CONFIG
    if not weights.is_file():
        raise CheckpointError(f"{folder}: no {WEIGHTS} (not a folder written by "
                              "save_pretrained)")
    if config.is_file():
        try:
            cfg = json.loads(config.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{config}: not JSON ({exc})") from None
        if not isinstance(cfg, dict) or cfg.get("library_name") != "reid-porting":
            raise CheckpointError(f"{config}: library_name is not 'reid-porting'")
        layout = (cfg.get("weights") or {}).get("safetensors_layout")
        if layout != LAYOUT_VERSION:
            raise CheckpointError(f"{config}: weights.safetensors_layout {layout!r} is not one "
                                  f"this library reads ({LAYOUT_VERSION})")
    return load(weights, canonical, device, exact=exact, **load_kwargs)


def push_to_hub(obj: nn.Module | dict[str, Any] | str | os.PathLike, repo_id: str, *,
                private: bool | None = None, token: str | None = None,
                commit_message: str = "Upload reid-porting model") -> str:
    """:func:`save_pretrained` into a temporary folder, then ``huggingface_hub``'s
    ``create_repo`` + ``upload_folder``; returns the commit URL. Needs the network."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ImportError(f"push_to_hub needs huggingface_hub: {_HUB_HINT}") from None
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(obj, Path(tmp) / "model")
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=folder, repo_id=repo_id,
                                 commit_message=commit_message)
    return str(getattr(info, "commit_url", info))
