"""``porting.load``: a checkpoint file to a ready-to-run module."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from porting.checkpoint import CheckpointError, load_checkpoint
from porting.graph import GraphError, GraphModule


def _attach(module: nn.Module, ckpt: dict[str, Any]) -> nn.Module:
    module.preprocess_spec = ckpt.get("preprocess")
    module.recipe = ckpt.get("recipe")
    module.checkpoint_source = ckpt.get("source", {})
    module.checkpoint_meta = ckpt.get("meta", {})
    # every field but the tensors, for porting.save_pretrained(module, ...)
    module.checkpoint_fields = {k: v for k, v in ckpt.items()
                                if k not in ("state_dict", "training")}
    return module


def model_from_checkpoint(ckpt: dict[str, Any], canonical: bool | None = None,
                          path: str | os.PathLike | None = None) -> nn.Module:
    """Build the module a checkpoint describes.

    By default a converted graph runs as a :class:`GraphModule` (named vars as in the source
    framework); ``canonical=True`` builds the :mod:`porting.models` class recorded in
    ``arch`` instead (present when the converter recognised the architecture). ``path`` only
    names the file in errors. A checkpoint from :func:`load_checkpoint` has passed its schema
    check; any error building it is still a :class:`CheckpointError`, never a traceback.
    """
    where = f"{path}: " if path is not None else ""
    try:
        return _build(ckpt, canonical, where)
    except CheckpointError:
        raise
    except (GraphError, KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{where}cannot build the model ({msg})") from None


def _build(ckpt: dict[str, Any], canonical: bool | None, where: str) -> nn.Module:
    from porting.models import build_model

    arch, graph, sd = ckpt.get("arch"), ckpt.get("graph"), ckpt["state_dict"]
    use_arch = canonical if canonical is not None else graph is None
    if use_arch:
        if arch is None:
            raise CheckpointError(f"{where}the checkpoint holds a graph that was not mapped "
                                  "onto a canonical architecture (convert with --arch auto)")
        model = build_model(arch)
        if "arch_map" in ckpt:  # a converted graph mapped onto the canonical class
            shapes = {k: v.shape for k, v in model.state_dict().items()}
            try:
                arch_sd = {k: sd[v].reshape(shapes[k]) for k, v in ckpt["arch_map"].items()
                           if k in shapes}
            except (KeyError, RuntimeError) as exc:
                name = arch.get("name")
                raise CheckpointError(f"{where}arch_map does not fit {name!r}: {exc}") from None
        else:
            arch_sd = sd
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        wrong = [f"{k} {tuple(v.shape)} (expected {shapes[k]})" for k, v in arch_sd.items()
                 if k in shapes and tuple(v.shape) != shapes[k]]
        if wrong:
            raise CheckpointError(f"{where}state_dict does not fit {arch.get('name')!r}: "
                                  f"shape of {', '.join(wrong[:3])}")
        missing, unexpected = model.load_state_dict(arch_sd, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{where}state_dict does not fit {arch.get('name')!r}: "
                                  f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    else:
        params = {k.removeprefix("params."): v for k, v in sd.items()}
        model = GraphModule(graph, params)
    return _attach(model.eval(), ckpt)


def load(path: str | os.PathLike, canonical: bool | None = None,
         device: str | torch.device = "cpu", *, allow_nonfinite: bool = False,
         memory_limit: int | None = None, exact: bool = False) -> nn.Module:
    """Load a reid-porting checkpoint (``.pth`` read with ``torch.load(weights_only=True)``, or
    ``.safetensors``) as an eval module.

    The file's schema is checked first (:func:`porting.checkpoint.check_schema`); NaN/Inf
    parameters are refused unless ``allow_nonfinite``; ``memory_limit`` bounds the estimated
    memory of the model and one probe forward (bytes). ``exact=True``: the source
    framework's arithmetic bit for bit instead of the fast test-time forms
    (:mod:`porting.inference`).
    """
    from porting.features import float32_on_cuda
    from porting.inference import set_exact

    ckpt = load_checkpoint(path, allow_nonfinite=allow_nonfinite, memory_limit=memory_limit)
    if torch.device(device).type == "cuda":
        float32_on_cuda()
    return set_exact(model_from_checkpoint(ckpt, canonical, path=path), exact).to(device)
