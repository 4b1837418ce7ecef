"""MatConvNet ``vl_nnconvt`` / ``dagnn.ConvTranspose``: the transposed convolution with
``upsample``, a ``[top bottom left right]`` crop and filter groups.

``vl_nnconvt`` is the transpose of ``vl_nnconv``: it scatters each input pixel times the
filter, ``upsample`` pixels apart, then drops ``crop`` pixels from the borders of the result:
``H_out = upsample * (H - 1) + FH - crop_top - crop_bottom``. That is Caffe's
``Deconvolution`` (:func:`porting.layers.deconv.deconvolution`, stride = upsample, pad = crop)
when the crop is the same on both sides of an axis; an asymmetric crop is the symmetric part
plus a slice. Numbers of groups are explicit (``numGroups``), not inferred.
"""

from __future__ import annotations

import torch

from porting.layers.deconv import deconv_output_size, deconvolution


def conv_transpose2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    upsample: tuple[int, int] = (1, 1),
    crop: tuple[int, int, int, int] = (0, 0, 0, 0),
    groups: int = 1,
) -> torch.Tensor:
    """``vl_nnconvt(x, F, B, 'upsample', U, 'crop', C, 'numGroups', G)`` on ``x`` (N, C, H, W).

    ``weight`` is MatConvNet's ``FH x FW x K x FD`` filter bank under the usual ``(3, 2, 0, 1)``
    transposition, ``(FD, K, FH, FW)``: input channel ``c`` (group ``c // (FD / G)``) spreads
    into output channels ``[g K, (g + 1) K)``, so the output has ``K * G`` channels, and
    ``bias`` ``K * G`` entries.
    """
    t, b, left, right = (int(v) for v in crop)
    if min(t, b, left, right) < 0:
        raise ValueError(f"crop must be non-negative, got {list(crop)}")
    kh, kw = weight.shape[-2:]
    oh = deconv_output_size(x.shape[-2], kh, upsample[0], 0, 1) - t - b
    ow = deconv_output_size(x.shape[-1], kw, upsample[1], 0, 1) - left - right
    if oh < 1 or ow < 1:
        raise ValueError(f"the output is empty ({oh}x{ow}): the crop {list(crop)} is too large")
    ph, pw = min(t, b), min(left, right)
    if groups > 1 and torch.onnx.is_in_onnx_export():
        # one ConvTranspose per group in the exported graph (same values): onnx's reference
        # evaluator, which checks every export, cannot run a grouped ConvTranspose
        xs, ws = x.chunk(groups, dim=1), weight.chunk(groups, dim=0)
        bs = bias.chunk(groups) if bias is not None else [None] * groups
        y = torch.cat([deconvolution(xg, wg, bg, tuple(upsample), (ph, pw), (1, 1), 1)
                       for xg, wg, bg in zip(xs, ws, bs, strict=True)], dim=1)
    else:
        y = deconvolution(x, weight, bias, tuple(upsample), (ph, pw), (1, 1), groups)
    if (t, b, left, right) != (ph, ph, pw, pw):
        h, w = y.shape[-2:]
        y = y[..., t - ph : h - (b - ph), left - pw : w - (right - pw)]
    return y
