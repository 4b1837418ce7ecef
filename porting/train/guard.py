"""Training that cannot fail silently: a loss or a weight that becomes NaN or Inf stops the run
(as detectron2's and fast-reid's "loss became infinite or NaN"), naming the epoch, the
iteration and the loss; no checkpoint with non-finite weights is ever written, so the last one
on disk is the last finite state."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

#: The three objectives of a batch's statistics (``porting.train.recipe.STAT_NAMES[:3]``) in
#: the paper's words.
LOSS_NAMES = ("identification loss, first image", "identification loss, second image",
              "verification loss")


class DivergedError(RuntimeError):
    """The run diverged (a check failed: exit 1). The message is one line."""


def check_losses(stats: torch.Tensor, epoch: int, iteration: int, total: int) -> None:
    """Raise :class:`DivergedError` if one of the batch's objectives (``stats[1:4]``, the
    layout of :func:`porting.train.steps.losses_and_stats`) is not finite."""
    values = [float(v) for v in stats[1:4].detach().cpu()]
    for name, value in zip(LOSS_NAMES, values, strict=True):
        if not math.isfinite(value):
            what = "NaN" if math.isnan(value) else "infinite"
            raise DivergedError(f"loss became {what} at epoch {epoch}, iteration {iteration} "
                                f"(overall {total}) ({name}); stopped without writing this "
                                "epoch's checkpoint: lower the learning rate (--lr / "
                                "--base-lr) or resume from the last checkpoint")


def nonfinite_tensors(named: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an Inf."""
    return [name for name, t in named
            if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def check_weights(named: Iterable[tuple[str, torch.Tensor]], epoch: int) -> None:
    """Raise :class:`DivergedError` before a checkpoint with non-finite weights is written."""
    bad = nonfinite_tensors(named)
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise DivergedError(f"weights became NaN or infinite in epoch {epoch} ({bad[0]}{more});"
                            " stopped without writing this epoch's checkpoint: lower the "
                            "learning rate (--lr / --base-lr)")
