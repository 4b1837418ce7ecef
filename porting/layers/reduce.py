"""BVLC ``Reduction`` and ``ArgMax``: reductions over the tail of a blob and the top-k.

``Reduction`` reduces every axis from ``axis`` on (the top has the shape before ``axis``);
``ArgMax`` ranks as ``std::partial_sort`` with ``std::greater`` on ``(value, index)`` pairs:
equal values rank the larger index first (a stable sort of the reversed axis; exported as
ONNX ``TopK`` of the reversed axis, which ranks equal values lower index first). Indices are
returned in the blob's float dtype, as Caffe writes them. ONNX forms: ``ReduceSum``/``Abs``/
``Mul``, ``TopK``.
"""

from __future__ import annotations

import torch

REDUCTIONS = ("SUM", "ASUM", "SUMSQ", "MEAN")


def reduction(x: torch.Tensor, operation: str = "SUM", axis: int = 0,
              coeff: float = 1.0) -> torch.Tensor:
    """Caffe ``Reduction``: SUM, ASUM (sum of |x|), SUMSQ or MEAN over the axes from
    ``axis``, times ``coeff``."""
    if operation not in REDUCTIONS:
        raise ValueError(f"unknown Reduction operation {operation!r}")
    start = axis % x.dim() if x.dim() else 0
    flat = x.reshape(tuple(x.shape[:start]) + (-1,))
    if operation == "ASUM":
        flat = flat.abs()
    elif operation == "SUMSQ":
        flat = flat * flat
    y = flat.sum(-1)
    if operation == "MEAN":
        y = y / flat.shape[-1]
    return y if coeff == 1 else y * coeff


def _rank(v: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` along the last axis, ties to the larger index (Caffe's pair ordering)."""
    d = v.shape[-1]
    if not 1 <= k <= d:
        raise ValueError(f"ArgMax top_k {k} must be in 1..{d}")
    if torch.onnx.is_in_onnx_export():  # ONNX TopK ranks equal values lower index first
        vals, idx = torch.topk(v.flip(-1), k, dim=-1)
    else:
        s = torch.sort(v.flip(-1), dim=-1, descending=True, stable=True)
        vals, idx = s.values[..., :k], s.indices[..., :k]
    return vals, (d - 1 - idx).to(v.dtype)


def argmax(x: torch.Tensor, top_k: int = 1, out_max_val: bool = False,
           axis: int | None = None) -> torch.Tensor:
    """Caffe ``ArgMax``. With ``axis``: the top-k indices (or values with ``out_max_val``)
    along it. Without: per item over C,H,W, shape ``(N, 1, k, 1...)`` of indices, or
    ``(N, 2, k, 1...)`` of indices then values with ``out_max_val`` (as many axes as the
    bottom, at least 3)."""
    if axis is None:
        vals, idx = _rank(x.reshape(x.shape[0], -1), top_k)
        out = torch.stack([idx, vals], 1) if out_max_val else idx[:, None]
        return out.reshape(tuple(out.shape) + (1,) * (max(x.dim(), 3) - 3))
    a = axis % x.dim()
    vals, idx = _rank(x.movedim(a, -1), top_k)
    return (vals if out_max_val else idx).movedim(x.dim() - 1, a)
