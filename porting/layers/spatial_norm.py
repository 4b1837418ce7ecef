"""MatConvNet ``vl_nnspnorm`` (SimpleNN ``spnorm``, ``dagnn.SpatialNorm``): divides every value by
a power of its channel's local energy, ``y = x * (1 + alpha * n2) ^ -beta``, where ``n2`` is the
MEAN of ``x^2`` over a ``PH x PW`` window (``vl_nnpool`` 'avg', stride 1, padded
``[floor((PH-1)/2), PH-1-floor((PH-1)/2), ...]`` so the output keeps the input's size; the
mean is over the window cells inside the image, as MatConvNet's average pooling does)."""

from __future__ import annotations

import torch

from porting.layers.pooling_matconvnet import MatConvNetPool2d


def spatial_norm_pool(ph: int, pw: int) -> MatConvNetPool2d:
    """The average pooling ``vl_nnspnorm`` runs on ``x.^2``."""
    top, left = (ph - 1) // 2, (pw - 1) // 2
    return MatConvNetPool2d("avg", (ph, pw), 1, (top, ph - 1 - top, left, pw - 1 - left))


def spatial_norm(x: torch.Tensor, param: tuple[float, float, float, float]) -> torch.Tensor:
    """``vl_nnspnorm(x, [PH PW ALPHA BETA])`` for ``x`` (N, C, H, W)."""
    ph, pw, alpha, beta = param
    if ph != int(ph) or pw != int(pw) or ph < 1 or pw < 1:
        raise ValueError(f"the window [PH PW] must be positive integers, got {[ph, pw]}")
    n2 = spatial_norm_pool(int(ph), int(pw))(x * x)
    return (1 + alpha * n2).pow(-beta) * x
