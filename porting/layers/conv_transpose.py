"""Transposed convolution: MatConvNet ``vl_nnconvt`` / ``dagnn.ConvTranspose`` (upsample,
``[top bottom left right]`` crop, filter groups), and any framework whose deconvolution is the
transpose of its correlation with a symmetric crop (Caffe ``Deconvolution``: stride, pad,
dilation, group).

``vl_nnconvt`` is the transpose of ``vl_nnconv``: it scatters each input pixel times the
filter, ``upsample`` pixels apart, then drops ``crop`` pixels from the borders of the result:
``H_out = upsample * (H - 1) + FH - crop_top - crop_bottom``. That is PyTorch's
``conv_transpose2d`` with ``stride = upsample`` and ``padding = crop`` when the crop is the same
on both sides of an axis; an asymmetric crop is the symmetric part plus a slice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def conv_transpose_size(size: int, kernel: int, stride: int, crop_before: int,
                        crop_after: int, dilation: int = 1) -> int:
    """Output length along one axis: ``stride * (size - 1) + dilation * (kernel - 1) + 1``
    minus both crops (``vl_nnconvt``: ``UP (X - 1) + F - CROP_a - CROP_b``)."""
    return stride * (size - 1) + dilation * (kernel - 1) + 1 - crop_before - crop_after


def conv_transpose2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: tuple[int, int] = (1, 1),
    crop: tuple[int, int, int, int] = (0, 0, 0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> torch.Tensor:
    """Transposed convolution of ``x`` (N, C, H, W).

    ``weight`` is PyTorch's transposed layout ``(C, K, kh, kw)``: input channel ``c`` (group
    ``c // (C / groups)``) spreads into output channels ``[g K, (g + 1) K)``, so the output has
    ``K * groups`` channels. MatConvNet's ``FH x FW x K x FD`` filters are this tensor under the
    same ``(3, 2, 0, 1)`` transposition as any other MatConvNet array. ``crop`` is
    ``[top bottom left right]``; ``bias`` has ``K * groups`` entries (added after the crop).
    """
    t, b, left, right = (int(v) for v in crop)
    if min(t, b, left, right) < 0:
        raise ValueError(f"crop must be non-negative, got {crop!r}")
    kh, kw = weight.shape[-2:]
    oh = conv_transpose_size(x.shape[-2], kh, stride[0], t, b, dilation[0])
    ow = conv_transpose_size(x.shape[-1], kw, stride[1], left, right, dilation[1])
    if oh < 1 or ow < 1:
        raise ValueError(f"the output is empty ({oh}x{ow}): the crop {list(crop)} is too large")
    ph, pw = min(t, b), min(left, right)
    y = F.conv_transpose2d(x, weight, bias, tuple(stride), (ph, pw), 0, groups,
                           tuple(dilation))
    if (t, b, left, right) != (ph, ph, pw, pw):
        h, w = y.shape[-2:]
        y = y[..., t - ph : h - (b - ph), left - pw : w - (right - pw)]
    return y
