"""Convolutions: MatConvNet's asymmetric ``[top bottom left right]`` padding, and Caffe's
im2col + GEMM arithmetic."""

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


def im2col_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    pad: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
) -> torch.Tensor:
    """Convolution computed as Caffe's CPU layer does: im2col, then one GEMM per image and
    group (dot products over ``C*kh*kw`` in Caffe's column order), batched over images.

    Mathematically a plain convolution; in float32 it follows Caffe's rounding more closely
    than a direct or Winograd kernel, which matters after 50 layers with BatchNorm. It has
    no per-image loop, so it traces to a dynamic-batch graph as it is.
    """
    t, b, left, r = pad
    xp = F.pad(x, (left, r, t, b)) if any(pad) else x
    h, w = xp.shape[-2:]
    o, ci, kh, kw = weight.shape
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    wg = weight.reshape(groups, o // groups, ci * kh * kw)
    if kh == kw == 1:  # a 1x1 im2col is the (strided) input itself: the same columns, no copy
        cols = xp[..., : (oh - 1) * stride[0] + 1 : stride[0], : (ow - 1) * stride[1] + 1 :
                  stride[1]].reshape(xp.shape[0], -1, oh * ow)
    else:
        cols = F.unfold(xp, (kh, kw), dilation=dilation, stride=stride)
    cols = cols.reshape(-1, groups, ci * kh * kw, oh * ow)
    y = torch.matmul(wg, cols).reshape(-1, o, oh, ow)
    return y if bias is None else y + bias.view(1, -1, 1, 1)
