"""``porting.load``: a checkpoint file to a ready-to-run module."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from porting.checkpoint import CheckpointError, load_checkpoint
from porting.graph import GraphModule


def _attach(module: nn.Module, ckpt: dict[str, Any]) -> nn.Module:
    module.preprocess_spec = ckpt.get("preprocess")
    module.recipe = ckpt.get("recipe")
    module.checkpoint_source = ckpt.get("source", {})
    module.checkpoint_meta = ckpt.get("meta", {})
    return module


def model_from_checkpoint(ckpt: dict[str, Any], canonical: bool | None = None) -> nn.Module:
    """Build the module a checkpoint describes.

    By default a converted graph runs as a :class:`GraphModule` (named vars as in the source
    framework); ``canonical=True`` builds the :mod:`porting.models` class recorded in
    ``arch`` instead (present when the converter recognised the architecture).
    """
    from porting.models import build_model

    arch, graph, sd = ckpt.get("arch"), ckpt.get("graph"), ckpt["state_dict"]
    use_arch = canonical if canonical is not None else graph is None
    if use_arch:
        if arch is None:
            raise CheckpointError("the checkpoint holds a graph that was not mapped onto a "
                                  "canonical architecture (convert with --arch auto)")
        model = build_model(arch)
        if "arch_map" in ckpt:  # a converted graph mapped onto the canonical class
            shapes = {k: v.shape for k, v in model.state_dict().items()}
            try:
                arch_sd = {k: sd[v].reshape(shapes[k]) for k, v in ckpt["arch_map"].items()
                           if k in shapes}
            except (KeyError, RuntimeError) as exc:
                name = arch.get("name")
                raise CheckpointError(f"arch_map does not fit {name!r}: {exc}") from None
        else:
            arch_sd = sd
        missing, unexpected = model.load_state_dict(arch_sd, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"state_dict does not fit {arch.get('name')!r}: missing "
                                  f"{missing[:5]}, unexpected {unexpected[:5]}")
    else:
        params = {k.removeprefix("params."): v for k, v in sd.items()}
        model = GraphModule(graph, params)
    return _attach(model.eval(), ckpt)


def load(path: str | os.PathLike, canonical: bool | None = None,
         device: str | torch.device = "cpu") -> nn.Module:
    """Load a reid-porting checkpoint (``torch.load(weights_only=True)``) as an eval module."""
    return model_from_checkpoint(load_checkpoint(path), canonical).to(device)
