"""BatchNorm as Caffe stores it (mean, variance, scale factor + a separate Scale layer) and
as MatConvNet stores it (``mult``, ``bias`` and ``moments = [mean, sigma]``)."""

from __future__ import annotations

import torch
from torch import nn


class CaffeBatchNorm(nn.Module):
    """Caffe ``BatchNorm``: blobs ``mean``, ``variance``, ``scale_factor``; no affine part.

    Caffe stores running sums: the statistics are ``blob / scale_factor``, and a zero factor
    means zero statistics. With ``use_global_stats`` (Caffe's TEST default) the stored
    statistics are used; otherwise the batch's, and the blobs accumulate like Caffe does
    (``s = maf*s + 1``, ``mean = maf*mean + m``, ``var = maf*var + m/(m-1) * v``).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        moving_average_fraction: float = 0.999,
        use_global_stats: bool | None = None,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.moving_average_fraction = moving_average_fraction
        self.use_global_stats = use_global_stats
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("variance", torch.ones(num_features))
        self.register_buffer("scale_factor", torch.ones(1))

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, use_global_stats={self.use_global_stats}"

    def _global(self) -> bool:
        return (not self.training) if self.use_global_stats is None else self.use_global_stats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return caffe_batch_norm(
            x, self.mean, self.variance, self.scale_factor, self.eps, self._global(),
            self.training, self.moving_average_fraction,
        )


def caffe_batch_norm(
    x: torch.Tensor,
    mean_blob: torch.Tensor,
    var_blob: torch.Tensor,
    scale_factor: torch.Tensor,
    eps: float,
    use_global_stats: bool,
    update: bool = False,
    moving_average_fraction: float = 0.999,
) -> torch.Tensor:
    """Functional Caffe BatchNorm over the three blobs (updated in place when ``update``)."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    if use_global_stats:
        sf = scale_factor.reshape(-1)[0]
        factor = torch.where(sf == 0, torch.zeros_like(sf), 1.0 / sf)
        mean = mean_blob * factor
        var = var_blob * factor
    else:
        dims = [0] + list(range(2, x.dim()))
        mean = x.mean(dim=dims)
        var = ((x - mean.view(shape)) ** 2).mean(dim=dims)
        if update:
            m = x.numel() // x.shape[1]
            with torch.no_grad():
                scale_factor.mul_(moving_average_fraction).add_(1.0)
                mean_blob.mul_(moving_average_fraction).add_(mean.detach())
                unbias = m / (m - 1) if m > 1 else 1.0
                var_blob.mul_(moving_average_fraction).add_(var.detach() * unbias)
    return (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)


class CaffeScale(nn.Module):
    """Caffe ``Scale`` with one bottom on channel axis 1: ``y = x * weight (+ bias)``."""

    def __init__(self, num_features: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        y = x * self.weight.view(shape)
        return y if self.bias is None else y + self.bias.view(shape)


class MatConvNetBatchNorm(nn.Module):
    """MatConvNet ``vl_nnbnorm`` / ``dagnn.BatchNorm`` with params ``mult``, ``bias``, ``moments``.

    ``moments`` is C x 2 ``[mean, sigma]`` with ``sigma = sqrt(var + eps)`` already applied,
    so test mode computes ``mult * (x - mean) / sigma + bias`` and never adds eps again.
    In training mode the batch moments are used (``sigma = sqrt(biased var + eps)``) and,
    if ``momentum`` is set, blended into ``moments`` the way cnn_train's 'average' method does.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = None):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.mult = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        moments = torch.zeros(num_features, 2)
        moments[:, 1] = 1.0  # [mean, sigma] = [0, 1]
        self.register_buffer("moments", moments)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.training:
            dims = [0] + list(range(2, x.dim()))
            mean = x.mean(dim=dims)
            sigma = torch.sqrt(((x - mean.view(shape)) ** 2).mean(dim=dims) + self.eps)
            if self.momentum is not None:
                with torch.no_grad():
                    batch = torch.stack([mean, sigma], dim=1).detach()
                    self.moments.mul_(1.0 - self.momentum).add_(self.momentum * batch)
        else:
            mean, sigma = self.moments[:, 0], self.moments[:, 1]
        xhat = (x - mean.view(shape)) / sigma.view(shape)
        return self.mult.view(shape) * xhat + self.bias.view(shape)
