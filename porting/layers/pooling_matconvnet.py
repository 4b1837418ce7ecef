"""MatConvNet ``vl_nnpool`` / ``dagnn.Pooling``: floor output size, asymmetric padding.

Padded cells never contribute: MAX pads with ``-inf`` and AVG divides by the number of window
cells inside the image (PyTorch's ``count_include_pad`` semantics match neither setting).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from porting.layers.pooling_caffe import as_pair
from porting.layers.pooling_static import PoolGeometry, StaticPool2d, pool_with_geometry


class MatConvNetPool2d(nn.Module):
    """``pad`` is ``[top bottom left right]``; ``method`` is ``'max'`` or ``'avg'``."""

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
        self.pool_size = as_pair(pool_size)
        self.stride = as_pair(stride)
        self.pad = (pad,) * 4 if isinstance(pad, int) else tuple(int(p) for p in pad)
        if len(self.pad) != 4:
            raise ValueError(f"MatConvNet pad must be [top bottom left right], got {pad!r}")

    @classmethod
    def from_attrs(cls, a: dict[str, Any]) -> MatConvNetPool2d:
        """From a graph layer's ``attrs`` (the ``mcn_pool`` op)."""
        return cls(a["method"], tuple(a["pool_size"]), tuple(a.get("stride", (1, 1))),
                   tuple(a.get("pad", (0, 0, 0, 0))))

    def extra_repr(self) -> str:
        return f"{self.method}, pool_size={self.pool_size}, stride={self.stride}, pad={self.pad}"

    def geometry(self, h: int, w: int) -> PoolGeometry:
        t, b, left, right = self.pad
        (kh, kw), (sh, sw) = self.pool_size, self.stride
        out = ((h + t + b - kh) // sh + 1, (w + left + right - kw) // sw + 1)
        if out[0] <= 0 or out[1] <= 0:
            raise ValueError(f"input {h}x{w} is smaller than the pooling window {kh}x{kw}")
        pads = (left, right, t, b)
        if self.method == "max":
            return PoolGeometry("max", (kh, kw), (sh, sw), pads, -math.inf, out)
        ones = F.pad(torch.ones(1, 1, h, w), pads)
        count = F.avg_pool2d(ones, (kh, kw), (sh, sw), divisor_override=1)[0, 0]
        return PoolGeometry("sum", (kh, kw), (sh, sw), pads, 0.0, out, count)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool_with_geometry(x, self.geometry(*x.shape[-2:]))

    def export_form(self, in_shape: tuple[int, ...]) -> nn.Module:
        """The exact ONNX-exportable form for inputs of ``in_shape`` (C, H, W)."""
        return StaticPool2d(self.geometry(*in_shape[-2:]), tuple(in_shape))
