"""Local response normalisation in the Caffe and the MatConvNet conventions.

Caffe (and PyTorch) divide ``alpha`` by the window size; MatConvNet does not, and its window
for an even size is asymmetric. Both compute ``x * (k + a * sum x^2) ** -beta``. Both modules
export to ONNX as they are (``Mul``/``Pad``/``Slice``/``Add``/``CumSum``/``Pow``; ONNX's own
``LRN`` op is not used); :meth:`export_form` only swaps the spatial window sum of Caffe's
WITHIN_CHANNEL mode for its ``Conv`` form.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from porting.layers.pooling_static import ones_kernel, window_sum

#: Windows up to this many channels are summed by direct additions (no cancellation error).
DIRECT_WINDOW = 16


def channel_window_sum(sq: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """Sum of ``sq`` over channels ``[c - before, c + after]`` (zero outside).

    Direct additions for the usual 5-wide window; for wide windows (MatConvNet's L2 trick uses
    N = 4096) a float64 running sum keeps the cost linear in C, and a window that spans every
    channel is one float64 sum broadcast over the channels.
    """
    c = sq.shape[1]
    before, after = min(before, c - 1), min(after, c - 1)
    if before + after + 1 <= DIRECT_WINDOW:
        padded = F.pad(sq, (0, 0, 0, 0, before, after)) if before or after else sq
        out = padded[:, 0:c]
        for i in range(1, before + after + 1):
            out = out + padded[:, i : i + c]
        return out
    if before >= c - 1 and after >= c - 1:
        return sq.double().sum(dim=1, keepdim=True).to(sq.dtype)
    padded = F.pad(sq.double(), (0, 0, 0, 0, before, after))
    csum = F.pad(torch.cumsum(padded, dim=1), (0, 0, 0, 0, 1, 0))
    width = before + after + 1
    return (csum[:, width : width + c] - csum[:, :c]).to(sq.dtype)


class CaffeLRN(nn.Module):
    """Caffe ``LRN``.

    ACROSS_CHANNELS: ``x * (k + alpha/size * sum_{|q-c| <= (size-1)/2} x_q^2) ** -beta``.
    WITHIN_CHANNEL: Caffe builds it from a square, an AVE pooling (size x size, stride 1,
    pad (size-1)/2, divisor always size^2) and ``Power(shift=1, scale=alpha, power=-beta)``:
    ``x * (1 + alpha/size^2 * sum_window x^2) ** -beta``; ``k`` is ignored there.
    """

    def __init__(
        self,
        local_size: int = 5,
        alpha: float = 1.0,
        beta: float = 0.75,
        k: float = 1.0,
        norm_region: str = "ACROSS_CHANNELS",
    ) -> None:
        super().__init__()
        if local_size % 2 == 0:
            raise ValueError(f"Caffe LRN requires an odd local_size, got {local_size}")
        if norm_region not in ("ACROSS_CHANNELS", "WITHIN_CHANNEL"):
            raise ValueError(f"unknown LRN norm_region {norm_region!r}")
        self.local_size = local_size
        self.alpha = alpha
        self.beta = beta
        self.k = k
        self.norm_region = norm_region
        self.register_buffer("ones", None)  # WITHIN_CHANNEL's export form sums by Conv

    @classmethod
    def from_attrs(cls, a: dict[str, Any]) -> CaffeLRN:
        """From a graph layer's ``attrs`` (the ``caffe_lrn`` op)."""
        return cls(a["local_size"], a["alpha"], a["beta"], a.get("k", 1.0),
                   a.get("norm_region", "ACROSS_CHANNELS"))

    def extra_repr(self) -> str:
        return (
            f"local_size={self.local_size}, alpha={self.alpha}, beta={self.beta}, "
            f"k={self.k}, norm_region={self.norm_region}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = (self.local_size - 1) // 2
        sq = x * x
        if self.norm_region == "ACROSS_CHANNELS":
            scale = self.k + (self.alpha / self.local_size) * channel_window_sum(sq, half, half)
        else:
            s = self.local_size
            total = window_sum(F.pad(sq, (half, half, half, half)), (s, s), (1, 1),
                               self.ones)
            scale = 1.0 + self.alpha * (total / (s * s))
        return x * torch.pow(scale, -self.beta)

    def export_form(self, in_shape: tuple[int, ...]) -> nn.Module:
        """This layer with ONNX-exact ops only, for ``in_shape[-3]`` channels."""
        if self.norm_region == "ACROSS_CHANNELS" or self.ones is not None:
            return self
        out = copy.copy(self)
        out._buffers = dict(self._buffers)
        out.register_buffer("ones", ones_kernel(in_shape[-3], (self.local_size,) * 2))
        return out


class MatConvNetLRN(nn.Module):
    """MatConvNet ``vl_nnnormalize`` / ``dagnn.LRN`` with ``param = [N kappa alpha beta]``.

    ``y = x * (kappa + alpha * sum_{q in Q(c)} x_q^2) ** -beta`` with
    ``Q(c) = [c - floor((N-1)/2), c + ceil((N-1)/2)]``: alpha is NOT divided by N, and an even
    N gives a window with one more channel above than below. ``[4096 0 1 0.5]`` on at most
    2048 channels is exact L2 normalisation across channels, without an epsilon.
    """

    def __init__(self, param: tuple[float, float, float, float]) -> None:
        super().__init__()
        n, kappa, alpha, beta = (float(p) for p in param)
        if n < 1 or n != int(n):
            raise ValueError(f"LRN window N must be a positive integer, got {n}")
        self.param = (int(n), kappa, alpha, beta)

    @classmethod
    def from_attrs(cls, a: dict[str, Any]) -> MatConvNetLRN:
        """From a graph layer's ``attrs`` (the ``mcn_lrn`` op)."""
        return cls(tuple(a["param"]))

    def extra_repr(self) -> str:
        return f"param={list(self.param)}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, kappa, alpha, beta = self.param
        before, after = (n - 1) // 2, n // 2
        scale = kappa + alpha * channel_window_sum(x * x, before, after)
        return x * torch.pow(scale, -beta)

    def export_form(self, in_shape: tuple[int, ...] | None = None) -> nn.Module:
        """Already written with ONNX-exact ops."""
        return self
