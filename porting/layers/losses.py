"""Softmax losses as Caffe's ``SoftmaxWithLoss`` and MatConvNet's ``dagnn.Loss`` reduce them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

FLT_MIN = 1.1754943508222875e-38


def softmax_log_loss(logits: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    """Cross-entropy of class maps ``(N, C[, H, W])`` against 0-based labels.

    A label per image is broadcast to every spatial position, as MatConvNet's ``vl_nnloss``
    does for a 1x1x1xN label. ``reduction``:

    - ``"mean"``: Caffe ``SoftmaxWithLoss`` (VALID normalisation = N*H*W; Caffe clips the
      probability at FLT_MIN before the log);
    - ``"sum"``: MatConvNet ``Loss('softmaxlog')``, summed over images and positions.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' (Caffe) or 'sum' (MatConvNet): {reduction!r}")
    target = target.long().reshape(-1)
    if logits.dim() == 2:
        logits = logits[:, :, None, None]
    n, _, h, w = logits.shape
    if target.numel() != n:
        raise ValueError(f"{target.numel()} labels for a batch of {n}")
    target = target.view(n, 1, 1).expand(n, h, w)
    if reduction == "mean":
        prob = torch.softmax(logits, dim=1).gather(1, target.unsqueeze(1))
        return -torch.log(torch.clamp(prob, min=FLT_MIN)).mean()
    return F.cross_entropy(logits, target, reduction="sum")


def class_error(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Number of positions whose arg-max is not the label (MatConvNet ``Loss('classerror')``)."""
    if logits.dim() == 2:
        logits = logits[:, :, None, None]
    n, _, h, w = logits.shape
    target = target.long().reshape(n, 1, 1).expand(n, h, w)
    return (logits.argmax(dim=1) != target).sum().to(logits.dtype)
