"""The ``Interp`` layer of the DeepLab/PSPNet forks: bilinear resizing with corners aligned.

hszhao/PSPNet ``interp_layer.cpp`` + ``util/interp.cpp``: the input is first cropped by
``pad_beg``/``pad_end`` (<= 0; the crop starts at ``-pad_beg`` on both axes), then resized to
``zoom_factor`` (``H + (H - 1) * (z - 1)``), ``shrink_factor`` (``(H - 1) / s + 1``), an explicit
``height``/``width`` or the second bottom's size. Source coordinates are computed in float32
whatever the blob's type: ``r = float((H1 - 1) / (H2 - 1))``, ``src = float(r * h2)``, the
lower neighbour ``int(src)``, weight ``src - int(src)``; a same-size resize is a copy. This
module builds those indices and weights exactly and applies them with ``index_select`` and
multiply-adds (ONNX ``Gather``/``Mul``/``Add``).
"""

from __future__ import annotations

import numpy as np
import torch


def interp_size(h: int, w: int, *, zoom_factor: int | None = None,
                shrink_factor: int | None = None, size: tuple[int, int] | None = None,
                pad_beg: int = 0, pad_end: int = 0) -> tuple[int, int]:
    """The fork's output size (exactly one of zoom, shrink or size given)."""
    if pad_beg > 0 or pad_end > 0:
        raise ValueError("Interp supports only pad_beg/pad_end <= 0 (cropping)")
    he, we = h + pad_beg + pad_end, w + pad_beg + pad_end
    if he < 1 or we < 1:
        raise ValueError(f"Interp crops {h}x{w} to {he}x{we}")
    given = [zoom_factor is not None, shrink_factor is not None, size is not None]
    if sum(given) != 1:
        raise ValueError("Interp needs exactly one of zoom_factor, shrink_factor, "
                         "height/width or a second bottom")
    if zoom_factor is not None:
        if zoom_factor < 1:
            raise ValueError(f"Interp zoom_factor must be >= 1, got {zoom_factor}")
        return he + (he - 1) * (zoom_factor - 1), we + (we - 1) * (zoom_factor - 1)
    if shrink_factor is not None:
        if shrink_factor < 1:
            raise ValueError(f"Interp shrink_factor must be >= 1, got {shrink_factor}")
        return (he - 1) // shrink_factor + 1, (we - 1) // shrink_factor + 1
    assert size is not None
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"Interp size must be positive, got {size[0]}x{size[1]}")
    return int(size[0]), int(size[1])


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower index, upper index and upper weight per output position, in float32 as the
    fork computes them."""
    r = np.float32((n_in - 1) / (n_out - 1)) if n_out > 1 else np.float32(0.0)
    src = (r * np.arange(n_out, dtype=np.float32)).astype(np.float32)
    lo = src.astype(np.int64)
    hi = lo + (lo < n_in - 1)
    return lo, hi, (src - lo.astype(np.float32)).astype(np.float32)


def interp(x: torch.Tensor, out_hw: tuple[int, int], pad_beg: int = 0,
           pad_end: int = 0) -> torch.Tensor:
    """The fork's bilinear ``Interp`` of the cropped input to ``out_hw``."""
    h, w = (int(s) for s in x.shape[-2:])  # static geometry (a traced graph freezes it)
    he, we = h + pad_beg + pad_end, w + pad_beg + pad_end
    off = -pad_beg
    if off or he != h or we != w:
        # the fork starts the crop at -pad_beg on both axes (x1 = y1 = -pad_beg)
        if off + he > h or off + we > w or he < 1 or we < 1:
            raise ValueError(f"Interp crop of {h}x{w} by pad_beg {pad_beg}, pad_end {pad_end}")
        x = x[..., off: off + he, off: off + we]
    oh, ow = out_hw
    if (oh, ow) == (he, we):
        return x.clone()
    hl, hh, hw = _axis_weights(he, oh)
    wl, wh, ww = _axis_weights(we, ow)
    dev, dt = x.device, x.dtype

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(dev)

    h1 = t(hw).to(dt).reshape(-1, 1)
    w1 = t(ww).to(dt)
    h0, w0 = 1 - h1, 1 - w1
    top, bot = x.index_select(-2, t(hl)), x.index_select(-2, t(hh))

    def cols(rows: torch.Tensor) -> torch.Tensor:
        return w0 * rows.index_select(-1, t(wl)) + w1 * rows.index_select(-1, t(wh))
    return h0 * cols(top) + h1 * cols(bot)
