"""MatConvNet ``vl_nncrop`` and ``dagnn.Crop``: spatial cropping.

``dagnn.Crop`` crops its first input to the height and width of its second, starting at the
offset ``crop = [cy cx]`` when the first is large enough; the offset is clipped so that the
crop never runs past the bottom/right border (``getAdaptedCrops``: ``top = dH - max(0, dH -
cy)``). A first input smaller than the second cannot be cropped (MatConvNet fails indexing).
"""

from __future__ import annotations

import torch


def crop_borders(x: torch.Tensor, crop: tuple[int, int, int, int]) -> torch.Tensor:
    """``vl_nncrop(x, [top bottom left right])`` on ``x`` (N, C, H, W)."""
    t, b, left, right = (int(v) for v in crop)
    h, w = x.shape[-2:]
    if min(t, b, left, right) < 0 or t + b >= h or left + right >= w:
        raise ValueError(f"cannot crop [{t} {b} {left} {right}] from a {h}x{w} map")
    return x[..., t : h - b, left : w - right]


def adapted_crop(in_hw: tuple[int, int], ref_hw: tuple[int, int],
                 offset: tuple[int, int]) -> tuple[int, int, int, int]:
    """``dagnn.Crop.getAdaptedCrops``: the ``[top bottom left right]`` crop that brings a map of
    ``in_hw`` to ``ref_hw``, starting at ``offset`` or as far as the border allows."""
    dv, du = in_hw[0] - ref_hw[0], in_hw[1] - ref_hw[1]
    if dv < 0 or du < 0:
        raise ValueError(f"cannot crop a {in_hw[0]}x{in_hw[1]} map to the larger "
                         f"{ref_hw[0]}x{ref_hw[1]}")
    v1, u1 = max(0, dv - int(offset[0])), max(0, du - int(offset[1]))
    if dv - v1 < 0 or du - u1 < 0:
        raise ValueError(f"the crop offset {list(offset)} is negative")
    return dv - v1, v1, du - u1, u1


def crop_like(x: torch.Tensor, ref: torch.Tensor, offset: tuple[int, int]) -> torch.Tensor:
    """``dagnn.Crop`` forward: ``x`` cropped to ``ref``'s height and width."""
    t, b, left, right = adapted_crop(tuple(x.shape[-2:]), tuple(ref.shape[-2:]), offset)
    h, w = x.shape[-2:]
    return x[..., t : h - b, left : w - right]
