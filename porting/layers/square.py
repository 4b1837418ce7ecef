"""The paper's Square layer: the elementwise squared difference of the two streams."""

from __future__ import annotations

import torch
from torch import nn


class Square(nn.Module):
    """``(f1 - f2) ** 2``: MatConvNet ``dagnn.Square`` of the authors' code; in Caffe it is
    ``Eltwise(SUM, coeff [1, -1])`` followed by ``Power(power=2)``, or caffe-reid's
    ``Euclidean``/``PairEuclidean`` layers."""

    def forward(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        return square_diff(f1, f2)


def square_diff(f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    """``(f1 - f2) ** 2`` elementwise."""
    d = f1 - f2
    return d * d
