"""Caffe ``Deconvolution``: the transposed convolution (col2im of Caffe's im2col GEMM).

The weight blob is ``(C_in, C_out / group, kh, kw)``, as PyTorch's ``conv_transpose2d`` and
ONNX ``ConvTranspose`` take it; the output is ``stride * (H - 1) + dilation * (k - 1) + 1 -
2 * pad`` per axis. Forks' ``ConvolutionDepthwise`` needs no layer of its own: it is a
``Convolution`` with ``group`` = channels (:func:`porting.layers.conv.im2col_conv2d`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def deconv_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """Caffe's ``DeconvolutionLayer::compute_output_shape`` along one axis."""
    return stride * (size - 1) + dilation * (kernel - 1) + 1 - 2 * pad


def deconvolution(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  stride: tuple[int, int] = (1, 1), pad: tuple[int, int] = (0, 0),
                  dilation: tuple[int, int] = (1, 1), groups: int = 1) -> torch.Tensor:
    """Caffe ``Deconvolution`` (groups, dilation, pad, stride, optional bias)."""
    if x.shape[1] != weight.shape[0]:
        raise ValueError(f"Deconvolution input has {x.shape[1]} channels, weight expects "
                         f"{weight.shape[0]}")
    out = [deconv_output_size(s, k, st, p, d) for s, k, st, p, d in
           zip(x.shape[-2:], weight.shape[-2:], stride, pad, dilation, strict=True)]
    if min(out) < 1:
        raise ValueError(f"Deconvolution output would be {out[0]}x{out[1]}")
    return F.conv_transpose2d(x, weight, bias, tuple(stride), tuple(pad), 0, groups,
                              tuple(dilation))
