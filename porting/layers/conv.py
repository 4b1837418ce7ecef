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


#: Images per GEMM are chosen so that one chunk's columns stay about this size: a 3x3
#: im2col writes 9x its input, and a chunk that stays in the last-level cache is read back by
#: the GEMM from there instead of from memory (2-3x faster on ResNet's 3x3 layers, same bits).
IM2COL_CHUNK_BYTES = 16 << 20


def _columns(xp: torch.Tensor, kh: int, kw: int, stride: tuple[int, int],
             dilation: tuple[int, int]) -> torch.Tensor:
    """Caffe's ``im2col`` as a strided view ``[N, C, kh, kw, oh, ow]`` of the padded input:
    row order ``(c, i, j)``, columns in raster order. Copying the view is 1.7x faster than
    ``F.unfold`` and gives the same values."""
    (sh, sw), (dh, dw) = stride, dilation
    u = xp.unfold(2, (kh - 1) * dh + 1, sh).unfold(3, (kw - 1) * dw + 1, sw)
    u = u[..., ::dh, ::dw]  # N, C, oh, ow, kh, kw
    return u.permute(0, 1, 4, 5, 2, 3)


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
    group (dot products over ``C*kh*kw`` in Caffe's column order).

    Mathematically a plain convolution; in float32 it follows Caffe's rounding more closely
    than a direct or Winograd kernel, which matters after 50 layers with BatchNorm. A 1x1
    filter uses the input as its columns, as Caffe does. Without autograd on the CPU the
    images go through in cache-sized chunks (:data:`IM2COL_CHUNK_BYTES`); the results do not
    depend on the chunking. Traced (TorchScript) or on a GPU it is one batched GEMM, with no
    loop over images, so it traces to a dynamic-batch graph.
    """
    t, b, left, r = pad
    xp = F.pad(x, (left, r, t, b)) if any(pad) else x
    n, h, w = xp.shape[0], xp.shape[-2], xp.shape[-1]
    o, ci, kh, kw = weight.shape
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    k = ci * kh * kw
    wg = weight.reshape(groups, o // groups, k)
    if kh == kw == 1:
        cols = xp[..., : (oh - 1) * stride[0] + 1 : stride[0], : (ow - 1) * stride[1] + 1 :
                  stride[1]]
    else:
        cols = _columns(xp, kh, kw, stride, dilation)
    grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                        or (bias is not None and bias.requires_grad))
    chunk = n
    copies = not (kh == kw == 1 and stride == (1, 1))  # a stride-1 1x1 reads x as it is
    if copies and x.device.type == "cpu" and not torch.jit.is_tracing() and not grad:
        per_image = groups * k * oh * ow * x.element_size()
        chunk = max(1, IM2COL_CHUNK_BYTES // max(per_image, 1))
    if chunk >= n:
        y = torch.matmul(wg, cols.reshape(n, groups, k, oh * ow))
    else:
        y = torch.empty(n, groups, o // groups, oh * ow, dtype=x.dtype, device=x.device)
        for i in range(0, n, chunk):
            part = cols[i : i + chunk].reshape(-1, groups, k, oh * ow)
            torch.matmul(wg, part, out=y[i : i + chunk])
    y = y.reshape(n, o, oh, ow)
    if bias is None:
        return y
    return y + bias.view(1, -1, 1, 1) if grad else y.add_(bias.view(1, -1, 1, 1))
