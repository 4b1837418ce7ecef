"""MatConvNet ``vl_nnpdist`` (SimpleNN ``pdist``, ``dagnn.PDist``): the p-distance between
feature vectors, per pixel, along the channel axis.

``y = (sum_c |x - x0|^p)^(1/p)`` (``noRoot``: without the root), ``x0`` broadcast against ``x``
as ``bsxfun`` does (a ``1 x 1 x C x N`` target is compared to every pixel). ``p == 2`` uses
``sqrt(sum d.*d)`` and ``p == 1`` ``sum |d|``, as MatConvNet special-cases them. Optional
instance weights multiply the per-pixel distances; ``aggregate`` then sums them.
``epsilon`` only bounds the derivative's divisions: the forward pass never reads it.
"""

from __future__ import annotations

import torch

#: ``aggregate`` as beta23's ``vl_nnpdist`` does it (``sum(sum(y))``: over H and W, one value
#: per image) and as beta24+ does it (``sum(y(:))``: one scalar; ``dagnn.PDist`` exists only
#: from beta24).
AGGREGATE_IMAGE = "image"
AGGREGATE_ALL = "all"


def pdist(x: torch.Tensor, x0: torch.Tensor, p: float = 2.0, no_root: bool = False,
          aggregate: str | None = None,
          instance_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Distances of ``x`` (N, C, H, W) to ``x0`` (broadcastable), shape (N, 1, H, W), or
    summed as ``aggregate`` says (``None``, :data:`AGGREGATE_IMAGE`: (N, 1, 1, 1),
    :data:`AGGREGATE_ALL`: (1, 1, 1, 1))."""
    d = x - x0
    if p == 1:
        y = d.abs().sum(dim=1, keepdim=True)
    elif p == 2:
        y = (d * d).sum(dim=1, keepdim=True)
        y = y if no_root else y.sqrt()
    else:
        y = d.abs().pow(p).sum(dim=1, keepdim=True)
        y = y if no_root else y.pow(1.0 / p)
    if instance_weights is not None:
        y = instance_weights * y
    if aggregate is None:
        return y
    if aggregate == AGGREGATE_IMAGE:
        return y.sum(dim=(2, 3), keepdim=True)
    if aggregate == AGGREGATE_ALL:
        return y.sum().reshape(1, 1, 1, 1)
    raise ValueError(f"aggregate must be None, {AGGREGATE_IMAGE!r} or {AGGREGATE_ALL!r}, "
                     f"got {aggregate!r}")
