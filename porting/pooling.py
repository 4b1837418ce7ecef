"""Pooling with the exact output size, padding and divisor rules of Caffe and MatConvNet.

PyTorch's ``ceil_mode`` differs from Caffe in when a last, overhanging window is kept, and
its padded average counts differ from both sources, so neither is used here: each module pads
explicitly and pools without implicit padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

FLT_MAX = 3.4028234663852886e38  # Caffe initialises MAX pooling outputs to -FLT_MAX.


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def caffe_pooled_size(size: int, kernel: int, stride: int, pad: int, ceil: bool = True) -> int:
    """Caffe's pooled output length along one axis (``PoolingLayer::Reshape``).

    CEIL (the default round mode): ``ceil((H + 2p - k) / s) + 1``; when padding is used the
    last window must start inside the image or the left padding, otherwise it is dropped.
    """
    span = size + 2 * pad - kernel
    out = (math.ceil(span / stride) if ceil else span // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _ave_divisor(size: int, kernel: int, stride: int, pad: int, out: int) -> torch.Tensor:
    """Caffe's AVE divisor: the window clipped to ``H + pad`` (padding inside counts)."""
    start = torch.arange(out) * stride - pad
    end = torch.clamp(start + kernel, max=size + pad)
    return (end - start).to(torch.float32)


class CaffePool2d(nn.Module):
    """Caffe ``Pooling`` (MAX or AVE), round mode CEIL or FLOOR, optional global pooling."""

    def __init__(
        self,
        method: str,
        kernel_size: int | tuple[int, int] = 1,
        stride: int | tuple[int, int] = 1,
        pad: int | tuple[int, int] = 0,
        global_pooling: bool = False,
        ceil_mode: bool = True,
    ) -> None:
        super().__init__()
        if method not in ("max", "ave"):
            raise ValueError(f"Caffe pooling method must be 'max' or 'ave', got {method!r}")
        self.method = method
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.pad = _pair(pad)
        self.global_pooling = global_pooling
        self.ceil_mode = ceil_mode
        if global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise ValueError("Caffe global pooling requires pad 0 and stride 1")

    def extra_repr(self) -> str:
        if self.global_pooling:
            return f"{self.method}, global_pooling=True"
        return (
            f"{self.method}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"pad={self.pad}, ceil_mode={self.ceil_mode}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        kh, kw = (h, w) if self.global_pooling else self.kernel_size
        sh, sw = self.stride
        ph, pw = self.pad
        if ph >= kh or pw >= kw:
            raise ValueError("Caffe pooling requires pad < kernel_size")
        oh = caffe_pooled_size(h, kh, sh, ph, self.ceil_mode)
        ow = caffe_pooled_size(w, kw, sw, pw, self.ceil_mode)
        if oh <= 0 or ow <= 0:
            raise ValueError(f"input {h}x{w} is smaller than the pooling kernel {kh}x{kw}")
        # Extend bottom/right so that every output window fits; windows that overhang the
        # image are clipped by Caffe, which the filler value reproduces.
        extra_h = max(0, (oh - 1) * sh + kh - (h + ph))
        extra_w = max(0, (ow - 1) * sw + kw - (w + pw))
        if self.method == "max":
            xp = F.pad(x, (pw, extra_w, ph, extra_h), value=-FLT_MAX)
            y = F.max_pool2d(xp, (kh, kw), (sh, sw))
        else:
            xp = F.pad(x, (pw, extra_w, ph, extra_h), value=0.0)
            y = F.avg_pool2d(xp, (kh, kw), (sh, sw), divisor_override=1)
            div_h = _ave_divisor(h, kh, sh, ph, oh).to(x.device, x.dtype)
            div_w = _ave_divisor(w, kw, sw, pw, ow).to(x.device, x.dtype)
            y = y / (div_h[:, None] * div_w[None, :])
        return y[..., :oh, :ow]


class MatConvNetPool2d(nn.Module):
    """MatConvNet ``vl_nnpool`` / ``dagnn.Pooling``: floor output size, asymmetric padding.

    ``pad`` is ``[top bottom left right]``. Padded cells never contribute: MAX pads with
    ``-inf`` and AVG divides by the number of window cells inside the image.
    """

    def __init__(
        self,
        method: str,
        pool_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        pad: int | tuple[int, int, int, int] = 0,
    ) -> None:
        super().__init__()
        if method not in ("max", "avg"):
            raise ValueError(f"MatConvNet pooling method must be 'max' or 'avg', got {method!r}")
        self.method = method
        self.pool_size = _pair(pool_size)
        self.stride = _pair(stride)
        self.pad = (pad,) * 4 if isinstance(pad, int) else tuple(int(p) for p in pad)
        if len(self.pad) != 4:
            raise ValueError(f"MatConvNet pad must be [top bottom left right], got {pad!r}")

    def extra_repr(self) -> str:
        return f"{self.method}, pool_size={self.pool_size}, stride={self.stride}, pad={self.pad}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, left, right = self.pad
        if self.method == "max":
            xp = F.pad(x, (left, right, t, b), value=-math.inf)
            return F.max_pool2d(xp, self.pool_size, self.stride)
        xp = F.pad(x, (left, right, t, b), value=0.0)
        total = F.avg_pool2d(xp, self.pool_size, self.stride, divisor_override=1)
        ones = F.pad(x.new_ones((1, 1) + tuple(x.shape[-2:])), (left, right, t, b))
        count = F.avg_pool2d(ones, self.pool_size, self.stride, divisor_override=1)
        return total / count
