"""BatchNorm as Caffe stores it (mean, variance, scale factor + a separate Scale layer) and
as MatConvNet stores it (``mult``, ``bias`` and ``moments = [mean, sigma]``).

At test time both are :func:`frozen_batch_norm` with per-channel constants, and their export
form is :class:`FrozenBatchNorm` holding those constants: ``Sub``/``Div``/``Mul``/``Add`` in
ONNX, never ONNX's ``BatchNormalization`` (which would add eps to MatConvNet's stored sigma
a second time).

Fast forms (off unless a layer's ``exact`` is False; :mod:`porting.inference` sets it): at
test time the same constants as one per-channel ``x * a + b`` (:func:`channel_affine`, one
pass instead of four; over a convolution's own output in place, :func:`conv_bn`).
Mathematically equal, rounded differently; the exact forms stay the default of every layer
and are what the export forms compute.
"""

from __future__ import annotations

import torch
from torch import nn


def _channel_shape(x: torch.Tensor) -> tuple[int, ...]:
    return (1, -1) + (1,) * (x.dim() - 2)


def frozen_batch_norm(x: torch.Tensor, mean: torch.Tensor, sigma: torch.Tensor,
                      mult: torch.Tensor | None = None, bias: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """``(x - mean) / sigma [* mult + bias]`` per channel (test-time BatchNorm)."""
    shape = _channel_shape(x)
    y = (x - mean.view(shape)) / sigma.view(shape)
    if mult is None:
        return y
    return mult.view(shape) * y + bias.view(shape)


def caffe_global_stats(mean_blob: torch.Tensor, var_blob: torch.Tensor,
                       scale_factor: torch.Tensor, eps: float
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Caffe's stored statistics as ``(mean, sigma)``: blobs divided by the scale factor
    (0 means zero statistics), ``sigma = sqrt(var + eps)``."""
    sf = scale_factor.reshape(-1)[0]
    factor = torch.where(sf == 0, torch.zeros_like(sf), 1.0 / sf)
    return mean_blob * factor, torch.sqrt(var_blob * factor + eps)


def batch_norm_affine(mean: torch.Tensor, sigma: torch.Tensor,
                      mult: torch.Tensor | None = None, bias: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(a, b)`` with ``frozen_batch_norm(x, ...) == x * a + b`` up to rounding."""
    a = 1.0 / sigma if mult is None else mult / sigma
    b = -mean * a if bias is None else bias - mean * a
    return a, b


def then_scale(ab: tuple[torch.Tensor, torch.Tensor], weight: torch.Tensor,
               bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel affine ``(a, b)`` followed by a Caffe ``Scale``, as one ``(a, b)``:
    how the fast forms run Caffe's BatchNorm + Scale pair in one pass."""
    a, b = ab[0] * weight, ab[1] * weight
    return a, b if bias is None else b + bias


def channel_affine(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                   inplace: bool = False) -> torch.Tensor:
    """``x * a + b`` per channel (axis 1) in one pass: the fast form of BatchNorm and Scale.

    ``inplace``: written over ``x`` (same values; no new map) when no gradient is being
    recorded; the caller vouches that nothing else reads ``x``.
    """
    shape = _channel_shape(x)
    if inplace and not (torch.is_grad_enabled() and (x.requires_grad or a.requires_grad
                                                      or b.requires_grad)):
        return torch.addcmul(b.view(shape), x, a.view(shape), out=x)
    return torch.addcmul(b.view(shape), x, a.view(shape))


class FastForm:
    """Mixin of the layers that have a fast test-time form; ``exact`` (default True) keeps
    the source framework's arithmetic. ``affine()`` is the per-channel ``(a, b)`` the layer
    computes right now, or None when it is not a per-channel affine map (batch statistics)."""

    exact: bool = True

    def affine(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        raise NotImplementedError

    def _fast(self, x: torch.Tensor) -> torch.Tensor | None:
        if self.exact:
            return None
        ab = self.affine()
        return None if ab is None else channel_affine(x, *ab)


class FrozenBatchNorm(nn.Module):
    """Test-time BatchNorm with constant tensors: the export form of both BatchNorms."""

    def __init__(self, mean: torch.Tensor, sigma: torch.Tensor,
                 mult: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("sigma", sigma.detach().clone())
        self.register_buffer("mult", None if mult is None else mult.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return frozen_batch_norm(x, self.mean, self.sigma, self.mult, self.bias)


class CaffeBatchNorm(FastForm, nn.Module):
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

    def affine(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self._global():
            return None
        return batch_norm_affine(*caffe_global_stats(self.mean, self.variance,
                                                     self.scale_factor, self.eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._fast(x)
        if y is not None:
            return y
        return caffe_batch_norm(
            x, self.mean, self.variance, self.scale_factor, self.eps, self._global(),
            self.training, self.moving_average_fraction,
        )

    def export_form(self, in_shape: tuple[int, ...] | None = None) -> nn.Module:
        """The constant form with the stored statistics; batch statistics export as they are."""
        if not self._global():
            return self
        with torch.no_grad():
            return FrozenBatchNorm(*caffe_global_stats(self.mean, self.variance,
                                                       self.scale_factor, self.eps))


def caffe_batch_norm(
    x: torch.Tensor,
    mean_blob: torch.Tensor,
    var_blob: torch.Tensor,
    scale_factor: torch.Tensor,
    eps: float,
    use_global_stats: bool,
    update: bool = False,
    moving_average_fraction: float = 0.999,
    fast: bool = False,
    inplace: bool = False,
) -> torch.Tensor:
    """Functional Caffe BatchNorm over the three blobs (updated in place when ``update``);
    ``fast``: the stored statistics as one :func:`channel_affine` (over ``x`` if
    ``inplace``)."""
    shape = _channel_shape(x)
    if use_global_stats:
        stats = caffe_global_stats(mean_blob, var_blob, scale_factor, eps)
        if fast:
            return channel_affine(x, *batch_norm_affine(*stats), inplace=inplace)
        return frozen_batch_norm(x, *stats)
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



class CaffeScale(FastForm, nn.Module):
    """Caffe ``Scale`` with one bottom on channel axis 1: ``y = x * weight (+ bias)``."""

    def __init__(self, num_features: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features)) if bias else None

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weight, torch.zeros_like(self.weight) if self.bias is None else self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.exact:
            return channel_affine(x, *self.affine())
        shape = _channel_shape(x)
        y = x * self.weight.view(shape)
        return y if self.bias is None else y + self.bias.view(shape)


def matconvnet_batch_norm(x: torch.Tensor, mult: torch.Tensor, bias: torch.Tensor,
                          moments: torch.Tensor, eps: float = 1e-5, training: bool = False,
                          momentum: float | None = None, fast: bool = False,
                          inplace: bool = False) -> torch.Tensor:
    """Functional ``vl_nnbnorm``: the stored ``moments`` at test time; in training the batch
    moments (``sigma = sqrt(biased var + eps)``), blended into ``moments`` in place when
    ``momentum`` is set (cnn_train's 'average' method). ``fast``: test time as one
    :func:`channel_affine` (over ``x`` if ``inplace``)."""
    if not training:
        if fast:
            ab = batch_norm_affine(moments[:, 0], moments[:, 1], mult, bias)
            return channel_affine(x, *ab, inplace=inplace)
        return frozen_batch_norm(x, moments[:, 0], moments[:, 1], mult, bias)
    shape = _channel_shape(x)
    dims = [0] + list(range(2, x.dim()))
    mean = x.mean(dim=dims)
    sigma = torch.sqrt(((x - mean.view(shape)) ** 2).mean(dim=dims) + eps)
    if momentum is not None:
        with torch.no_grad():
            batch = torch.stack([mean, sigma], dim=1).detach()
            moments.mul_(1.0 - momentum).add_(momentum * batch)
    return frozen_batch_norm(x, mean, sigma, mult, bias)


class MatConvNetBatchNorm(FastForm, nn.Module):
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

    def affine(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.training:
            return None
        return batch_norm_affine(self.moments[:, 0], self.moments[:, 1], self.mult, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._fast(x)
        if y is not None:
            return y
        return matconvnet_batch_norm(x, self.mult, self.bias, self.moments, self.eps,
                                     self.training, self.momentum)

    def export_form(self, in_shape: tuple[int, ...] | None = None) -> nn.Module:
        """The test-time constants (``moments`` as stored, sigma not recomputed)."""
        return FrozenBatchNorm(self.moments[:, 0], self.moments[:, 1], self.mult, self.bias)


def conv_bn(conv: nn.Module, bn: nn.Module, scale: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``scale(bn(conv(x)))``, the Conv -> BatchNorm (-> Scale) of the ResNets.

    With ``bn``'s fast form on and its statistics frozen, BatchNorm and a Caffe Scale are one
    per-channel affine pass over the convolution's own output, in place when no gradient is
    recorded (no new map: at batch 32 that is as fast as folding the constants into the
    convolution, and rounds closer to the source; see bench/README.md).
    """
    ab = None if getattr(bn, "exact", True) else bn.affine()
    if isinstance(scale, CaffeScale) and ab is not None and not scale.exact:
        ab = then_scale(ab, *scale.affine())
    elif not isinstance(scale, nn.Identity):
        ab = None
    if ab is None:
        return scale(bn(conv(x)))
    return channel_affine(conv(x), *ab, inplace=True)
