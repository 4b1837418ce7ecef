"""Caffe ``Pooling``: CEIL (or FLOOR) output size, AVE divisor clipped to ``H + pad``.

PyTorch's ``ceil_mode`` differs from Caffe in when a last, overhanging window is kept, and
its padded average counts differ too, so neither is used: the layer computes a
:class:`~porting.layers.pooling_static.PoolGeometry` (explicit padding, crop, divisor) and
pools without implicit padding; its export form is that geometry frozen.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from porting.layers.pooling_static import PoolGeometry, StaticPool2d, pool_with_geometry

FLT_MAX = 3.4028234663852886e38  # Caffe initialises MAX pooling outputs to -FLT_MAX.


def as_pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def caffe_pooled_size(size: int, kernel: int, stride: int, pad: int, ceil: bool = True) -> int:
    """Caffe's pooled output length along one axis (``PoolingLayer::Reshape``).

    CEIL (the default round mode): ``ceil((H + 2p - k) / s) + 1``; when padding is used the
    last window must start inside the image or the left padding, otherwise it is dropped.
    """
    if stride < 1 or kernel < 1 or pad < 0:
        raise ValueError(f"pooling needs kernel >= 1, stride >= 1 and pad >= 0, got "
                         f"kernel {kernel}, stride {stride}, pad {pad}")
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
        self.kernel_size = as_pair(kernel_size)
        self.stride = as_pair(stride)
        self.pad = as_pair(pad)
        self.global_pooling = global_pooling
        self.ceil_mode = ceil_mode
        if global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise ValueError("Caffe global pooling requires pad 0 and stride 1")

    @classmethod
    def from_attrs(cls, a: dict[str, Any]) -> CaffePool2d:
        """From a graph layer's ``attrs`` (the ``caffe_pool`` op)."""
        return cls(a["method"], tuple(a.get("kernel", (1, 1))), tuple(a.get("stride", (1, 1))),
                   tuple(a.get("pad", (0, 0))), a.get("global_pooling", False),
                   a.get("ceil_mode", True))

    def extra_repr(self) -> str:
        if self.global_pooling:
            return f"{self.method}, global_pooling=True"
        return (
            f"{self.method}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"pad={self.pad}, ceil_mode={self.ceil_mode}"
        )

    def geometry(self, h: int, w: int) -> PoolGeometry:
        """Padding, crop and divisor that make a plain pooling compute Caffe's output."""
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
        # image are clipped by Caffe, which the filler value (MAX) and divisor (AVE) reproduce.
        extra_h = max(0, (oh - 1) * sh + kh - (h + ph))
        extra_w = max(0, (ow - 1) * sw + kw - (w + pw))
        pads = (pw, extra_w, ph, extra_h)
        if self.method == "max":
            return PoolGeometry("max", (kh, kw), (sh, sw), pads, -FLT_MAX, (oh, ow))
        divisor = _ave_divisor(h, kh, sh, ph, oh)[:, None] * _ave_divisor(w, kw, sw, pw, ow)
        return PoolGeometry("sum", (kh, kw), (sh, sw), pads, 0.0, (oh, ow), divisor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool_with_geometry(x, self.geometry(*x.shape[-2:]))

    def export_form(self, in_shape: tuple[int, ...]) -> nn.Module:
        """The exact ONNX-exportable form for inputs of ``in_shape`` (C, H, W)."""
        return StaticPool2d(self.geometry(*in_shape[-2:]), tuple(in_shape))
