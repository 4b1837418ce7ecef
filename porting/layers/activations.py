"""Caffe's elementwise activations beyond ReLU/Sigmoid/TanH, as BVLC computes them.

Each is one function of PyTorch ops that ONNX has (``PRelu``... ``Exp``, ``Log``,
``Greater``), so a graph running them exports as it runs: ``PReLU``, ``ELU``, ``AbsVal``,
``BNLL``, ``Exp``, ``Log``, ``Threshold`` and ``Power``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def prelu(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """Caffe ``PReLU``: ``max(0, x) + a_c * min(0, x)`` with one slope per channel (axis 1),
    or one for all channels (``channel_shared``: a blob of one value)."""
    if slope.numel() == 1:
        return F.prelu(x, slope.reshape(1))
    if x.dim() < 2 or x.shape[1] != slope.numel():
        raise ValueError(f"PReLU has {slope.numel()} slopes for {tuple(x.shape)} (channels "
                         f"on axis 1)")
    return F.prelu(x, slope.reshape(-1))


def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Caffe ``ELU``: ``max(x, 0) + alpha * (exp(min(x, 0)) - 1)``."""
    return F.elu(x, alpha)


def absval(x: torch.Tensor) -> torch.Tensor:
    """Caffe ``AbsVal``: ``|x|``."""
    return torch.abs(x)


def bnll(x: torch.Tensor) -> torch.Tensor:
    """Caffe ``BNLL``: ``log(1 + exp(x))``, computed as Caffe does without overflow
    (``x + log(1 + exp(-x))`` for positive ``x``): ``max(x, 0) + log1p(exp(-|x|))``."""
    return torch.clamp(x, min=0) + torch.log1p(torch.exp(-torch.abs(x)))


def caffe_exp(x: torch.Tensor, base: float = -1.0, scale: float = 1.0,
              shift: float = 0.0) -> torch.Tensor:
    """Caffe ``Exp``: ``base ^ (shift + scale * x)``; ``base = -1`` means ``e``.

    Caffe computes ``outer * exp(inner * x)`` with ``inner = ln(base) * scale`` and
    ``outer = base ^ shift``; so does this (same roundings of the two constants).
    """
    if base != -1.0 and base <= 0:
        raise ValueError(f"Exp base must be -1 (e) or > 0, got {base}")
    log_base = 1.0 if base == -1.0 else math.log(base)
    inner = log_base * scale
    outer = 1.0 if shift == 0 else (math.exp(shift) if base == -1.0 else base ** shift)
    y = torch.exp(x if inner == 1 else x * inner)
    return y if outer == 1 else y * outer


def caffe_log(x: torch.Tensor, base: float = -1.0, scale: float = 1.0,
              shift: float = 0.0) -> torch.Tensor:
    """Caffe ``Log``: ``log_base(shift + scale * x)``; ``base = -1`` means ``e``."""
    if base != -1.0 and (base <= 0 or base == 1):
        raise ValueError(f"Log base must be -1 (e) or > 0 and != 1, got {base}")
    y = x if scale == 1 else x * scale
    y = torch.log(y if shift == 0 else y + shift)
    return y if base == -1.0 else y * (1.0 / math.log(base))


def threshold(x: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """Caffe ``Threshold``: 1 where ``x > threshold``, else 0 (NaN gives 0)."""
    return (x > value).to(x.dtype)


def caffe_power(x: torch.Tensor, power: float = 1.0, scale: float = 1.0,
                shift: float = 0.0) -> torch.Tensor:
    """Caffe ``Power``: ``(shift + scale * x) ^ power`` (squares by one multiply, like
    Caffe's ``powx`` up to rounding). With ``scale * power == 0`` Caffe writes the constant
    ``shift ^ power`` (1 for power 0) whatever ``x`` holds, NaN and Inf included."""
    if scale * power == 0:
        return torch.full_like(x, 1.0 if power == 0 else float(shift) ** power)
    y = x if scale == 1 else x * scale
    if shift != 0:
        y = y + shift
    if power == 1:
        return y
    return y * y if power == 2 else torch.pow(y, power)
