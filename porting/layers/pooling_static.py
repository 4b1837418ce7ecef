"""Pooling with a fixed geometry: explicit padding, an unpadded window op, a crop, a divisor.

Both frameworks' pooling layers reduce to this once the input size is known (their own
modules compute a :class:`PoolGeometry` per input and run :func:`pool_with_geometry`), and
:class:`StaticPool2d` is the same computation with the geometry frozen for one input size:
the exact ONNX form (``Pad``, ``MaxPool`` or a ones-kernel depthwise ``Conv``, ``Slice``,
``Div``) that :mod:`porting.export` puts in place of the live layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class PoolGeometry:
    """Everything pooling needs for one input size.

    ``method`` is ``"max"`` or ``"sum"`` (a window sum, divided by ``divisor`` when one is
    given); ``pads`` in ``F.pad`` order (left, right, top, bottom) filled with ``fill``;
    ``out_size`` the source framework's output size (the padded map may pool to more).
    """

    method: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]
    fill: float
    out_size: tuple[int, int]
    divisor: torch.Tensor | None = None


def ones_kernel(channels: int, kernel: tuple[int, int]) -> torch.Tensor:
    """The depthwise ones kernel of :func:`window_sum`'s export form."""
    return torch.ones((channels, 1) + tuple(kernel))


def window_sum(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
               ones: torch.Tensor | None = None) -> torch.Tensor:
    """Unpadded window sums; given a :func:`ones_kernel`, as a depthwise convolution with it
    (ONNX ``Conv``, group = C), since ONNX ``AveragePool`` has no divisor override."""
    if ones is None:
        return F.avg_pool2d(x, kernel, stride, divisor_override=1)
    return F.conv2d(x, ones, None, stride, 0, 1, ones.shape[0])


def pool_with_geometry(x: torch.Tensor, g: PoolGeometry, ones: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """Pad, pool without implicit padding, crop to ``g.out_size``, divide."""
    if any(g.pads):
        x = F.pad(x, g.pads, value=g.fill)
    if g.method == "max":
        y = F.max_pool2d(x, g.kernel, g.stride)
    else:
        y = window_sum(x, g.kernel, g.stride, ones)
    if tuple(y.shape[-2:]) != g.out_size:
        y = y[..., : g.out_size[0], : g.out_size[1]]
    if g.divisor is None:
        return y
    return y / g.divisor.to(device=y.device, dtype=y.dtype)


def check_fits(g: PoolGeometry, h: int, w: int) -> None:
    """Refuse a geometry whose padded input pools to fewer cells than the output needs."""
    full = ((h + g.pads[2] + g.pads[3] - g.kernel[0]) // g.stride[0] + 1,
            (w + g.pads[0] + g.pads[1] - g.kernel[1]) // g.stride[1] + 1)
    if full[0] < g.out_size[0] or full[1] < g.out_size[1]:
        raise ValueError(f"padded input pools to {full}, smaller than {g.out_size}")


class StaticPool2d(nn.Module):
    """A pooling layer frozen for one input size: the export form of both pooling layers."""

    def __init__(self, geometry: PoolGeometry, in_shape: tuple[int, ...]) -> None:
        super().__init__()
        check_fits(geometry, in_shape[-2], in_shape[-1])
        self.geometry = geometry
        self.register_buffer("divisor", geometry.divisor)
        self.register_buffer("ones", ones_kernel(in_shape[-3], geometry.kernel)
                             if geometry.method == "sum" else None)

    def extra_repr(self) -> str:
        g = self.geometry
        return (f"{g.method}, kernel={g.kernel}, stride={g.stride}, pads(l,r,t,b)={g.pads}, "
                f"fill={g.fill}, out={g.out_size}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.geometry
        if self.divisor is not None:  # the buffer follows .to(dtype/device)
            g = PoolGeometry(g.method, g.kernel, g.stride, g.pads, g.fill, g.out_size,
                             self.divisor)
        return pool_with_geometry(x, g, self.ones)
