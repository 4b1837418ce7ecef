"""Convolution with MatConvNet's asymmetric ``[top bottom left right]`` padding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MatConvNetConv2d(nn.Conv2d):
    """``vl_nnconv`` / ``dagnn.Conv``: correlation with zero padding ``[t b l r]``.

    Weights are stored in PyTorch's OIHW layout; groups are implied by the filter depth as in
    MatConvNet (``Cin / size(filters, 3)``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        pad: int | tuple[int, int, int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias
        )
        self.pad = (pad,) * 4 if isinstance(pad, int) else tuple(int(p) for p in pad)
        if len(self.pad) != 4:
            raise ValueError(f"MatConvNet pad must be [top bottom left right], got {pad!r}")

    def extra_repr(self) -> str:
        return super().extra_repr() + f", pad={self.pad}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, left, right = self.pad
        if t == b and left == right:
            return F.conv2d(
                x, self.weight, self.bias, self.stride, (t, left), self.dilation, self.groups
            )
        x = F.pad(x, (left, right, t, b))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
