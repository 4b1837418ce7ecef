"""MatConvNet's spatial-transformer layers: ``vl_nnbilinearsampler`` (``dagnn.BilinearSampler``)
and the grids of ``dagnn.AffineGridGenerator`` and ``dagnn.UniformScalingGridGenerator``.

Conventions (MatConvNet's, kept here): a grid holds **(y, x)** pairs -- the vertical coordinate
first -- normalised so that -1 and +1 are the CENTRES of the first and last pixel (PyTorch's
``align_corners=True``); samples outside the image read zeros (each of the four neighbours that
falls outside is skipped) -- what MatConvNet's GPU kernel computes. Its CPU kernel compares
the sample's ``floor`` with the image size as an unsigned number, so a sample whose upper-left
neighbour lies in row or column -1 (within one pixel above or left of the image) reads 0
instead of its in-image neighbours: ``cpu_kernel=True`` reproduces that (a border effect of
the CPU build only; the default is the GPU kernel's, which has no such case). A batch of
``No = k N`` grids applies grids ``[k n, k (n + 1))`` to input image ``n``.

Grids here are (No, Ho, Wo, 2) tensors; in a converted graph a grid var keeps MatConvNet's
``2 x Ho x Wo x No`` array under the usual ``(3, 2, 0, 1)`` transposition, and the graph op
converts between the two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bilinear_sample(x: torch.Tensor, grid_yx: torch.Tensor, cpu_kernel: bool = False
                    ) -> torch.Tensor:
    """``vl_nnbilinearsampler(x, grid)``: ``x`` (N, C, H, W), ``grid_yx`` (No, Ho, Wo, 2) with
    ``No`` a multiple of ``N``; returns (No, C, Ho, Wo). ``cpu_kernel``: the CPU kernel's
    border (see the module's docstring)."""
    n, no = x.shape[0], grid_yx.shape[0]
    if n == 0 or no % n:
        raise ValueError(f"the number of grids ({no}) is not a multiple of the number of "
                         f"images ({n})")
    if no != n:
        x = x.repeat_interleave(no // n, dim=0)
    # grid_sample takes (x, y) pairs; MatConvNet's come as (y, x).
    if torch.onnx.is_in_onnx_export():
        y = _sample_by_gathering(x, grid_yx)
    else:
        y = F.grid_sample(x, grid_yx.flip(-1), mode="bilinear", padding_mode="zeros",
                          align_corners=True)
    if not cpu_kernel:
        return y
    # the kernel's own arithmetic: 0.5 * (g + 1) * (size - 1), in the grid's precision
    h, w = x.shape[-2:]
    py = 0.5 * (grid_yx[..., 0] + 1) * (h - 1)
    px = 0.5 * (grid_yx[..., 1] + 1) * (w - 1)
    dropped = (py.floor() < 0) | (px.floor() < 0)
    return y.masked_fill(dropped.unsqueeze(1), 0.0)


def _sample_by_gathering(x: torch.Tensor, grid_yx: torch.Tensor) -> torch.Tensor:
    """The same bilinear sampling as gathers of the four neighbours' pixel rows: how it is
    exported (onnx's reference evaluator, which checks every export, runs neither the
    GridSample that torch exports nor a GatherElements this wide)."""
    n, c, h, w = x.shape
    ho, wo = grid_yx.shape[1:3]
    py = 0.5 * (grid_yx[..., 0] + 1) * (h - 1)
    px = 0.5 * (grid_yx[..., 1] + 1) * (w - 1)
    y0, x0 = py.floor(), px.floor()
    pixels = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    base = (torch.arange(n, device=x.device) * (h * w)).view(n, 1, 1)
    out = x.new_zeros(n, ho, wo, c)
    for dy in (0, 1):
        for dx in (0, 1):
            yy, xx = y0 + dy, x0 + dx
            weight = (py - y0 if dy else 1 - (py - y0)) * (px - x0 if dx else 1 - (px - x0))
            inside = (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= w - 1)
            weight = torch.where(inside, weight, torch.zeros_like(weight))
            index = base + (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).long()
            out = out + pixels[index.reshape(-1)].reshape(n, ho, wo, c) * weight.unsqueeze(-1)
    return out.permute(0, 3, 1, 2)


def matlab_linspace(n: int, dtype: torch.dtype, device: torch.device | None = None
                    ) -> torch.Tensor:
    """MATLAB's ``linspace(-1, 1, n)``: for ``n == 1`` it is ``[1]`` (the end point)."""
    if n == 1:
        return torch.ones(1, dtype=dtype, device=device)
    return torch.linspace(-1.0, 1.0, n, dtype=dtype, device=device)


def _base_grid(ho: int, wo: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    v = matlab_linspace(ho, torch.float64, like.device).view(1, ho, 1)
    u = matlab_linspace(wo, torch.float64, like.device).view(1, 1, wo)
    return v, u


def affine_grid(theta: torch.Tensor, ho: int, wo: int) -> torch.Tensor:
    """``dagnn.AffineGridGenerator``: ``theta`` (N, 6) is each image's ``1 x 1 x 6`` input, a
    2 x 3 matrix ``A`` in MATLAB's column order ``[a11 a21 a12 a22 a13 a23]``; the sample for
    output pixel ``(v, u)`` (``linspace(-1, 1, Ho)``, ``linspace(-1, 1, Wo)``) is
    ``[y x] = [v u] * A(:, 1:2) + A(:, 3)'``. Returns (N, Ho, Wo, 2) (y, x)."""
    if theta.dim() != 2 or theta.shape[1] != 6:
        raise ValueError(f"the affine transforms must be N x 6, got {tuple(theta.shape)}")
    if ho < 1 or wo < 1:
        raise ValueError(f"the grid size must be positive, got {ho}x{wo}")
    v, u = _base_grid(ho, wo, theta)
    a = theta.to(torch.float64).view(-1, 6, 1, 1)
    y = v * a[:, 0] + u * a[:, 1] + a[:, 4]
    x = v * a[:, 2] + u * a[:, 3] + a[:, 5]
    return torch.stack((y, x), dim=-1).to(theta.dtype)


def uniform_scaling_grid(t: torch.Tensor, ho: int, wo: int) -> torch.Tensor:
    """``dagnn.UniformScalingGridGenerator``: ``t`` (N, 3) is each image's ``[s ty tx]``; the
    sample for output pixel ``(v, u)`` is ``(s v + ty, s u + tx)``. Returns (N, Ho, Wo, 2)."""
    if t.dim() != 2 or t.shape[1] != 3:
        raise ValueError(f"the transforms must be N x 3 ([s ty tx]), got {tuple(t.shape)}")
    if ho < 1 or wo < 1:
        raise ValueError(f"the grid size must be positive, got {ho}x{wo}")
    v, u = _base_grid(ho, wo, t)
    s = t.to(torch.float64).view(-1, 3, 1, 1)
    y = (s[:, 0] * v + s[:, 1]).expand(-1, ho, wo)
    x = (s[:, 0] * u + s[:, 2]).expand(-1, ho, wo)
    return torch.stack((y, x), dim=-1).to(t.dtype)
