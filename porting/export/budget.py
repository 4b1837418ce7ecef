"""How much memory an export's checks will take, estimated before anything runs, so that an
input size the machine cannot hold (``--size 9999 9999``) is one line instead of the kernel's
out-of-memory killer.

The checks run every layer on the check batches in float32 and float64, and
``onnx.reference.ReferenceEvaluator`` keeps every intermediate result of the float64 graph:
the estimate is the sum of the sizes of every tensor one forward pass produces (counted on
PyTorch's ``meta`` device: shapes only, no memory, no arithmetic), per check image, in
float64. It is a lower bound of the peak (the model's weights and the float32 run come on
top).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

#: Default for export's ``--max-memory`` (by this estimate the full-width ResNet-50 at
#: 256x256 needs 1.9 GB, its two-stream net 3.8 GB).
DEFAULT_MAX_MEMORY_GB = 8.0


class _CountOutputs(TorchDispatchMode):
    """Counts the elements of every tensor each operator returns."""

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.elements += t.numel()
        return out


def check_bytes(model: nn.Module, what: str, example: Sequence[torch.Tensor], batch: int, *,
                recipe: str | None = None, feature_var: str | None = None) -> int | None:
    """Estimated bytes of the export's checks for ``example`` (batch-1 shapes) run on
    ``batch`` images; None when the model cannot be run on the meta device."""
    from porting.export.nets import build_export

    try:
        meta = copy.deepcopy(model).to("meta")
        probe = [torch.empty(tuple(e.shape), device="meta") for e in example]
        spec = build_export(meta, what, probe, recipe=recipe, feature_var=feature_var,
                            rewrite=False)
        with torch.no_grad(), _CountOutputs() as counter:
            spec.reference(*probe)
    except Exception:  # noqa: BLE001 - an estimate only; the export itself reports errors
        return None
    return counter.elements * batch * 8


def refuse_if_too_big(need: int | None, limit_gb: float, what: str) -> None:
    """The one-line refusal (a ``ValueError``) when ``need`` exceeds ``limit_gb``."""
    if need is not None and need > limit_gb * 1e9:
        raise ValueError(f"the export's checks would need about {need / 1e9:.1f} GB ({what}), "
                         f"over the limit of {limit_gb:g} GB; raise it with --max-memory GB "
                         "if this machine has the memory")
