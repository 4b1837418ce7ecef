"""Caffe ``InnerProduct``: a linear layer on the blob flattened in C, H, W order."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InnerProduct(nn.Linear):
    """``nn.Linear`` on ``x.flatten(1)``; the weight is Caffe's ``(num_output, C*H*W)`` blob."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.flatten(1), self.weight, self.bias)
