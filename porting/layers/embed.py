"""BVLC ``Embed``: each bottom value, an integer index, selects a row of the weight.

The top has the bottom's shape plus ``num_output``; the weight blob is ``(input_dim,
num_output)``. Caffe casts the float index to int and (in debug builds) refuses a fraction
or an index outside ``[0, input_dim)``; here those are always refused. ONNX: ``Gather``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def embed(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
          ) -> torch.Tensor:
    """Caffe ``Embed`` of the (float-coded) indices ``x``."""
    idx = x.long()
    if not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
        if bool((idx.to(x.dtype) != x).any()):
            raise ValueError("Embed input holds a value that is not an integer index")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= weight.shape[0]):
            raise ValueError(f"Embed input holds an index outside [0, {weight.shape[0]})")
    return F.embedding(idx, weight) if bias is None else F.embedding(idx, weight) + bias
