"""Caffe MAX pooling's mask top and the forks' ``Upsample`` that consumes it.

* BVLC ``Pooling`` MAX with a second top writes, per output cell, the index ``h * W + w`` of
  the first maximum (raster order, strict ``>``) in its bottom plane, as a float;
* SegNet's ``Upsample`` (alexgkendall/caffe-segnet ``upsample_layer.cpp``): a zero map of
  ``upsample_h x upsample_w`` (or ``H * scale - pad_out``) where each bottom value is written at
  its mask index, in raster order (a repeated index keeps the last write);
* the YOLO forks' one-bottom ``Upsample`` (eric612/MobileNet-YOLO ``upsample_layer.cpp``):
  nearest-neighbour by an integer ``scale`` (output cell ``(h, w)`` reads ``(h / s, w / s)``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from porting.layers.pooling_caffe import FLT_MAX, CaffePool2d


def max_pool_with_mask(x: torch.Tensor, pool: CaffePool2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Caffe MAX ``Pooling`` (``pool``'s geometry) and its mask top."""
    if pool.method != "max":
        raise ValueError("only MAX pooling has a mask top")
    h, w = x.shape[-2:]
    g = pool.geometry(h, w)
    left, right, top, bottom = g.pads
    padded = F.pad(x, g.pads, value=-FLT_MAX) if any(g.pads) else x
    y, idx = F.max_pool2d(padded, g.kernel, g.stride, return_indices=True)
    y, idx = y[..., : g.out_size[0], : g.out_size[1]], idx[..., : g.out_size[0], : g.out_size[1]]
    wp = w + left + right
    row, col = idx // wp - top, idx % wp - left
    return y, (row * w + col).to(x.dtype)


def max_unpool(x: torch.Tensor, mask: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """SegNet ``Upsample``: ``x[n, c, i]`` written at ``mask[n, c, i]`` of a zero
    ``out_hw`` plane; where two cells name one index, the later one (raster order) wins."""
    if x.shape != mask.shape or x.dim() != 4:
        raise ValueError(f"Upsample bottom {tuple(x.shape)} and mask {tuple(mask.shape)} must "
                         f"be 4-D of one shape")
    n, c = x.shape[:2]
    size = out_hw[0] * out_hw[1]
    idx = mask.reshape(n, c, -1).long()
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= size):
        raise ValueError(f"Upsample mask index out of range for a {out_hw[0]}x{out_hw[1]} top "
                         f"(does the scale match the pooling that made the mask?)")
    pos = torch.arange(idx.shape[-1], device=x.device).expand_as(idx)
    winner = torch.full((n, c, size), -1, dtype=torch.long, device=x.device)
    winner = winner.scatter_reduce(2, idx, pos, "amax", include_self=True)
    vals = x.reshape(n, c, -1).gather(2, winner.clamp(min=0))
    out = torch.where(winner >= 0, vals, torch.zeros((), dtype=x.dtype, device=x.device))
    return out.reshape(n, c, *out_hw)


def unpool_size(h: int, w: int, scale: tuple[int, int], pad_out: tuple[bool, bool] = (False, False),
                upsample_hw: tuple[int, int] | None = None) -> tuple[int, int]:
    """SegNet ``Upsample``'s top size: ``upsample_h/w`` when given, else ``H * scale -
    pad_out``."""
    if upsample_hw is not None:
        return int(upsample_hw[0]), int(upsample_hw[1])
    return h * scale[0] - int(pad_out[0]), w * scale[1] - int(pad_out[1])


def upsample_nearest(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The YOLO forks' ``Upsample``: each cell repeated ``scale x scale`` times."""
    if scale < 1:
        raise ValueError(f"Upsample scale must be >= 1, got {scale}")
    return x.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
