"""MatConvNet ``vl_nnroipool`` (``dagnn.ROIPooling``): max or average pooling of each region of
interest over a ``subdivisions = [SH SW]`` grid of bins, in MatConvNet's arithmetic.

A region is ``[image u1 v1 u2 v2]`` (1-based image index and pixel coordinates, ``u``
horizontal). ``transform`` maps the corners first (a scalar ``s`` is ``u -> s u + 1 - s``, the
same for ``v``; six numbers are ``[a b c d e f]``: ``u' = a u + c v + e``, ``v' = b u + d v +
f``); the corners are then rounded (half away from zero) to 0-based pixels, the region is at
least 1 x 1, and bin ``p`` covers ``[floor(p L / S), ceil((p + 1) L / S))`` of it, clipped to
the image, with ``L / S`` in single precision as the kernel computes it. An empty bin gives 0;
average divides by the bin's clipped area. The image index is clipped to the batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def roi_transform(transform: float | tuple[float, ...]) -> tuple[float, ...]:
    """``vl_nnroipool``'s six transform numbers from the ``Transform`` option (1, 2 or 6
    numbers)."""
    t = (transform,) if isinstance(transform, int | float) else tuple(transform)
    if len(t) in (1, 2):
        sx, sy = t[0], t[min(len(t) - 1, 1)]
        return (sx, 0.0, 0.0, sy, 1.0 - sx, 1.0 - sy)
    if len(t) == 6:
        return t
    raise ValueError(f"transform must have 1, 2 or 6 numbers, got {len(t)}")


def _round_away(v: np.float32) -> int:
    return int(math.copysign(math.floor(abs(float(v)) + 0.5), float(v)))


def _bins(start: int, end: int, n: int, size: int) -> list[tuple[int, int]]:
    length = np.float32(max(end - start + 1, 1))
    bin_size = np.float32(length / np.float32(n))
    out = []
    for p in range(n):
        lo = int(math.floor(np.float32(np.float32(p) * bin_size)))
        hi = int(math.ceil(np.float32(np.float32(p + 1) * bin_size)))
        out.append((min(max(lo + start, 0), size), min(max(hi + start, 0), size)))
    return out


def roi_pool(x: torch.Tensor, rois: torch.Tensor, subdivisions: tuple[int, int],
             transform: float | tuple[float, ...] = 1.0, method: str = "max") -> torch.Tensor:
    """``x`` (N, C, H, W), ``rois`` (R, 5); returns (R, C, SH, SW)."""
    if method not in ("max", "avg"):
        raise ValueError(f"method must be 'max' or 'avg', got {method!r}")
    sh, sw = (int(s) for s in subdivisions)
    if sh < 1 or sw < 1:
        raise ValueError(f"subdivisions must be positive, got {list(subdivisions)}")
    if rois.dim() != 2 or rois.shape[1] != 5 or rois.shape[0] < 1:
        raise ValueError(f"the ROIs must be a 5 x K array with K >= 1, got {tuple(rois.shape)}")
    t = roi_transform(transform)
    n, c, h, w = x.shape
    out = x.new_zeros(rois.shape[0], c, sh, sw)
    boxes = rois.detach().to("cpu", torch.float32).numpy()
    for r, (img, u1_, v1_, u2_, v2_) in enumerate(boxes):
        # the transform in double, stored in single, as the kernel does
        u1 = np.float32(t[0] * u1_ + t[2] * v1_ + t[4])
        v1 = np.float32(t[1] * u1_ + t[3] * v1_ + t[5])
        u2 = np.float32(t[0] * u2_ + t[2] * v2_ + t[4])
        v2 = np.float32(t[1] * u2_ + t[3] * v2_ + t[5])
        hs, ws = _round_away(v1) - 1, _round_away(u1) - 1
        he, we = _round_away(v2) - 1, _round_away(u2) - 1
        image = min(max(int(img) - 1, 0), n - 1)
        rows, cols = _bins(hs, he, sh, h), _bins(ws, we, sw, w)
        for i, (y0, y1) in enumerate(rows):
            for j, (x0, x1) in enumerate(cols):
                if y1 <= y0 or x1 <= x0:
                    continue
                cell = x[image, :, y0:y1, x0:x1]
                if method == "max":
                    out[r, :, i, j] = cell.amax(dim=(1, 2))
                else:
                    out[r, :, i, j] = cell.sum(dim=(1, 2)) * (1.0 / ((y1 - y0) * (x1 - x0)))
    return out


def flatten_rois(y: torch.Tensor) -> torch.Tensor:
    """``dagnn.ROIPooling``'s ``flatten``: ``reshape(y, 1, 1, [], R)`` in MATLAB's column order
    (bin rows fastest, then bin columns, then channels): (R, C SH SW, 1, 1)."""
    return y.permute(0, 1, 3, 2).reshape(y.shape[0], -1, 1, 1)
