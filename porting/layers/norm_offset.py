"""MatConvNet ``vl_nnnoffset`` (SimpleNN ``noffset``, ``dagnn.NormOffset``): subtracts from every
channel a power of the pixel's squared norm, ``y = x - param(1) * L ^ param(2)`` with
``L = max(sum_c x^2, 1e-8)`` (the floor is MatConvNet's, applied in the forward pass too)."""

from __future__ import annotations

import torch

#: ``vl_nnnoffset``'s lower bound on the squared norm.
NOFFSET_FLOOR = 1e-8


def norm_offset(x: torch.Tensor, k: float, power: float) -> torch.Tensor:
    """``x - k * max(sum_c x^2, 1e-8) ** power`` for ``x`` (N, C, H, W)."""
    energy = (x * x).sum(dim=1, keepdim=True).clamp_min(NOFFSET_FLOOR)
    return x - k * energy.pow(power)
