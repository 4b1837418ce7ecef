"""Normalisations of the Caffe forks and BVLC's ``MVN``.

* SSD's ``Normalize`` (weiliu89/caffe ssd ``normalize_layer.cpp``: ``x / sqrt(sum x^2 + eps)``
  over C,H,W per item (``across_spatial``) or over C per pixel, then times a scale blob of
  one value (``channel_shared``) or one per channel);
* BVLC ``MVN`` (``(x - mean) / (std + eps)``, eps added to the standard deviation, per item
  and channel or per item across channels);
* the ``BN`` layer of the Inception-BN / TSN / PSPNet fork (yjxiong/caffe ``bn_layer.cpp``:
  blobs scale, shift, history mean, history variance, each ``(1, C)``; at test time, or
  ``frozen``, ``scale * (x - mean) / sqrt(var + eps) + shift``).

ONNX forms: ``ReduceSum``/``Sqrt``/``Div``/``Mul``/``Sub``/``Add``, as PyTorch runs them.
"""

from __future__ import annotations

import torch

from porting.layers.batchnorm import frozen_batch_norm


def ssd_normalize(x: torch.Tensor, scale: torch.Tensor, across_spatial: bool = True,
                  eps: float = 1e-10) -> torch.Tensor:
    """SSD ``Normalize``; ``scale`` holds 1 value (channel_shared) or C values."""
    if x.dim() < 2:
        raise ValueError(f"Normalize needs a blob of >= 2 axes, got {tuple(x.shape)}")
    sq = x * x
    if across_spatial:
        norm = torch.sqrt(sq.flatten(1).sum(1) + eps).reshape((-1,) + (1,) * (x.dim() - 1))
    else:
        norm = torch.sqrt(sq.sum(1, keepdim=True) + eps)
    y = x / norm
    if scale.numel() == 1:
        return y * scale.reshape(())
    if scale.numel() != x.shape[1]:
        raise ValueError(f"Normalize scale has {scale.numel()} values for {x.shape[1]} "
                         f"channels")
    return y * scale.reshape((1, -1) + (1,) * (x.dim() - 2))


def mvn(x: torch.Tensor, normalize_variance: bool = True, across_channels: bool = False,
        eps: float = 1e-9) -> torch.Tensor:
    """BVLC ``MVN``: mean (and variance) over each item's C,H,W (``across_channels``) or
    over each channel's H,W."""
    if x.dim() < 2:
        raise ValueError(f"MVN needs a blob of >= 2 axes, got {tuple(x.shape)}")
    dims = tuple(range(1 if across_channels else 2, x.dim()))
    # an N x C blob normalised per channel has one value per mean: it is its own mean
    centred = x - (x.mean(dim=dims, keepdim=True) if dims else x)
    if not normalize_variance:
        return centred
    var = (centred * centred).mean(dim=dims, keepdim=True) if dims else centred * centred
    return centred / (torch.sqrt(var) + eps)


def fork_bn(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, mean: torch.Tensor,
            var: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The fork's ``BN`` at test time (or ``frozen``): the stored history statistics."""
    return frozen_batch_norm(x, mean.reshape(-1), torch.sqrt(var.reshape(-1) + eps),
                             scale.reshape(-1), shift.reshape(-1))
