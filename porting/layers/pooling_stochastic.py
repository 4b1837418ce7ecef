"""Caffe ``Pooling`` STOCHASTIC at test time: each window's values weighted by themselves.

BVLC ``pooling_layer.cu`` ``StoPoolForwardTest`` (Caffe's CPU path is not implemented):
``sum(x^2) / sum(x)`` over the window clipped to the image, 0 where ``sum(x) <= 0``; no
padding (Caffe refuses it for STOCHASTIC), Caffe's CEIL output size. The window sums are
:func:`~porting.layers.pooling_static.pool_with_geometry` sums (a ``Conv`` with a ones
kernel in the export form), so the layer exports as it runs once frozen to a shape.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from porting.layers.pooling_caffe import CaffePool2d
from porting.layers.pooling_static import PoolGeometry, ones_kernel, pool_with_geometry


class CaffeStochasticPool2d(nn.Module):
    """Test-time STOCHASTIC pooling (kernel, stride, CEIL or FLOOR, global)."""

    def __init__(self, kernel_size: int | tuple[int, int] = 1,
                 stride: int | tuple[int, int] = 1, global_pooling: bool = False,
                 ceil_mode: bool = True) -> None:
        super().__init__()
        self.pool = CaffePool2d("ave", kernel_size, stride, 0, global_pooling, ceil_mode)
        self.register_buffer("ones", None)

    @classmethod
    def from_attrs(cls, a: dict[str, Any]) -> CaffeStochasticPool2d:
        """From a graph layer's ``attrs``."""
        return cls(tuple(a.get("kernel", (1, 1))), tuple(a.get("stride", (1, 1))),
                   a.get("global_pooling", False), a.get("ceil_mode", True))

    def geometry(self, h: int, w: int) -> PoolGeometry:
        """Window sums over the clipped windows (zero fill, no divisor)."""
        g = self.pool.geometry(h, w)
        return PoolGeometry("sum", g.kernel, g.stride, g.pads, 0.0, g.out_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.geometry(*x.shape[-2:])
        s1 = pool_with_geometry(x, g, self.ones)
        s2 = pool_with_geometry(x * x, g, self.ones)
        return torch.where(s1 > 0, s2 / torch.where(s1 > 0, s1, torch.ones_like(s1)),
                           torch.zeros_like(s1))

    def export_form(self, in_shape: tuple[int, ...]) -> nn.Module:
        """This layer with its window sums as ONNX ``Conv`` for ``in_shape[-3]`` channels."""
        out = copy.copy(self)
        out._buffers = dict(self._buffers)
        out.register_buffer("ones", ones_kernel(in_shape[-3], self.geometry(
            *in_shape[-2:]).kernel))
        return out
