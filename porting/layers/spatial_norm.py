"""MatConvNet ``vl_nnspnorm`` (SimpleNN ``spnorm``, ``dagnn.SpatialNorm``): divides every value by
a power of its channel's local energy, ``y = x * (1 + alpha * n2) ^ -beta``, where ``n2`` is the
MEAN of ``x^2`` over a ``PH x PW`` window (``vl_nnpool`` 'avg', stride 1, padded
``[floor((PH-1)/2), PH-1-floor((PH-1)/2), ...]`` so the output keeps the input's size; the
mean is over the window cells inside the image, as MatConvNet's average pooling does).

The module's pooling is a :class:`~porting.layers.pooling_matconvnet.MatConvNetPool2d`, so the
export rewrite gives it its static ONNX form like any other MatConvNet pooling.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from porting.layers.pooling_matconvnet import MatConvNetPool2d


def spatial_norm_pool(ph: int, pw: int) -> MatConvNetPool2d:
    """The average pooling ``vl_nnspnorm`` runs on ``x.^2``."""
    top, left = (ph - 1) // 2, (pw - 1) // 2
    return MatConvNetPool2d("avg", (ph, pw), 1, (top, ph - 1 - top, left, pw - 1 - left))


class MatConvNetSpatialNorm(nn.Module):
    """``vl_nnspnorm(x, [PH PW ALPHA BETA])`` on ``x`` (N, C, H, W)."""

    def __init__(self, param: tuple[float, float, float, float] | list[float]) -> None:
        super().__init__()
        ph, pw, alpha, beta = (float(p) for p in param)
        if not (ph.is_integer() and pw.is_integer() and ph >= 1 and pw >= 1):
            raise ValueError(f"the window [PH PW] must be positive integers, got {[ph, pw]}")
        self.pool = spatial_norm_pool(int(ph), int(pw))
        self.alpha, self.beta = alpha, beta

    @classmethod
    def from_attrs(cls, a: dict[str, Any]) -> MatConvNetSpatialNorm:
        """From a graph layer's ``attrs`` (the ``spnorm`` op)."""
        return cls(a["param"])

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n2 = self.pool(x * x)
        # the constants as tensors of x's dtype: an exported float64 graph keeps them exact
        alpha, beta = x.new_tensor(self.alpha), x.new_tensor(-self.beta)
        return (1 + alpha * n2).pow(beta) * x


def spatial_norm(x: torch.Tensor, param: tuple[float, float, float, float]) -> torch.Tensor:
    """``vl_nnspnorm(x, [PH PW ALPHA BETA])`` for ``x`` (N, C, H, W)."""
    return MatConvNetSpatialNorm(param)(x)
