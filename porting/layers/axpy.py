"""SENet's ``Axpy``: ``a * x + y`` with one scale per item and channel.

hujie-frank/SENet ``axpy_layer.cpp``: bottoms ``a`` of shape ``(N, C)`` or ``(N, C, 1, 1)``,
``x`` and ``y`` of one shape ``(N, C, ...)``; the top is ``a[n, c] * x + y``. It fuses the
squeeze-excitation scale with the residual sum. ONNX: ``Mul`` + ``Add``.
"""

from __future__ import annotations

import torch


def axpy(a: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``a[n, c] * x + y`` (``a`` broadcast over the axes after C)."""
    if x.shape != y.shape:
        raise ValueError(f"Axpy x {tuple(x.shape)} and y {tuple(y.shape)} differ")
    if tuple(a.shape[:2]) != tuple(x.shape[:2]) or a[0, 0].numel() != 1:
        raise ValueError(f"Axpy scale {tuple(a.shape)} is not one value per item and channel "
                         f"of {tuple(x.shape)}")
    return a.reshape(tuple(x.shape[:2]) + (1,) * (x.dim() - 2)) * x + y
