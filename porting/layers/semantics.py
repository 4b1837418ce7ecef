"""Layer factories for the two source frameworks.

Models are written once with Caffe's hyperparameters (the released nets were all designed in
Caffe); a :class:`Semantics` turns each into the layer the chosen framework actually runs,
converting hyperparameters exactly as MatConvNet's ``import-caffe.py`` does.
"""

from __future__ import annotations

from torch import nn

from porting.layers.batchnorm import CaffeBatchNorm, CaffeScale, MatConvNetBatchNorm
from porting.layers.conv import MatConvNetConv2d
from porting.layers.inner_product import InnerProduct
from porting.layers.lrn import CaffeLRN, MatConvNetLRN
from porting.layers.pooling_caffe import CaffePool2d
from porting.layers.pooling_matconvnet import MatConvNetPool2d


class Semantics:
    """Base class: one factory method per layer kind."""

    name: str = ""

    def conv(self, cin: int, cout: int, kernel: int, stride: int = 1, pad: int = 0,
             groups: int = 1, bias: bool = True) -> nn.Module:
        raise NotImplementedError

    def fc(self, cin: int, cout: int, kernel: int = 1) -> nn.Module:
        """A fully connected layer over a ``kernel x kernel`` input map."""
        raise NotImplementedError

    def max_pool(self, kernel: int, stride: int, pad: int = 0) -> nn.Module:
        raise NotImplementedError

    def avg_pool(self, kernel: int, stride: int, pad: int = 0) -> nn.Module:
        raise NotImplementedError

    def global_avg_pool(self) -> nn.Module:
        raise NotImplementedError

    def lrn(self, local_size: int, alpha: float, beta: float, k: float = 1.0) -> nn.Module:
        """Caffe ACROSS_CHANNELS hyperparameters (alpha divided by the size)."""
        raise NotImplementedError

    def batch_norm(self, channels: int, eps: float = 1e-5) -> nn.Module:
        raise NotImplementedError

    def scale(self, channels: int) -> nn.Module:
        """The Scale layer after a BatchNorm (an identity where BatchNorm is affine)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{self.name} semantics>"


class CaffeSemantics(Semantics):
    """BVLC Caffe: CEIL pooling, ``InnerProduct`` on the flattened C,H,W blob, BN + Scale."""

    name = "caffe"

    def conv(self, cin, cout, kernel, stride=1, pad=0, groups=1, bias=True):
        return nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=bias)

    def fc(self, cin, cout, kernel=1):
        return InnerProduct(cin * kernel * kernel, cout)

    def max_pool(self, kernel, stride, pad=0):
        return CaffePool2d("max", kernel, stride, pad)

    def avg_pool(self, kernel, stride, pad=0):
        return CaffePool2d("ave", kernel, stride, pad)

    def global_avg_pool(self):
        return CaffePool2d("ave", global_pooling=True)

    def lrn(self, local_size, alpha, beta, k=1.0):
        return CaffeLRN(local_size, alpha, beta, k)

    def batch_norm(self, channels, eps=1e-5):
        return CaffeBatchNorm(channels, eps)

    def scale(self, channels):
        return CaffeScale(channels, bias=True)


class MatConvNetSemantics(Semantics):
    """MatConvNet as its Caffe importer builds the nets: floor pooling with the bottom/right
    padding ``min(pad + stride - 1, kernel - 1)`` emulating CEIL, fully connected layers as
    convolutions, LRN ``[N k alpha/N beta]``, BatchNorm with the Scale folded into
    ``mult``/``bias``."""

    name = "matconvnet"

    def conv(self, cin, cout, kernel, stride=1, pad=0, groups=1, bias=True):
        return MatConvNetConv2d(cin, cout, kernel, stride, pad, groups=groups, bias=bias)

    def fc(self, cin, cout, kernel=1):
        return MatConvNetConv2d(cin, cout, kernel)

    @staticmethod
    def _ceil_pad(kernel: int, stride: int, pad: int) -> tuple[int, int, int, int]:
        extra = min(pad + stride - 1, kernel - 1)
        return (pad, extra, pad, extra)

    def max_pool(self, kernel, stride, pad=0):
        return MatConvNetPool2d("max", kernel, stride, self._ceil_pad(kernel, stride, pad))

    def avg_pool(self, kernel, stride, pad=0):
        return MatConvNetPool2d("avg", kernel, stride, self._ceil_pad(kernel, stride, pad))

    def global_avg_pool(self):
        raise ValueError("MatConvNet has no global pooling layer; use a fixed pool size")

    def lrn(self, local_size, alpha, beta, k=1.0):
        return MatConvNetLRN((local_size, k, alpha / local_size, beta))

    def batch_norm(self, channels, eps=1e-5):
        return MatConvNetBatchNorm(channels, eps)

    def scale(self, channels):
        return nn.Identity()


CAFFE = CaffeSemantics()
MATCONVNET = MatConvNetSemantics()


def get_semantics(name: str | Semantics) -> Semantics:
    """``"caffe"`` or ``"matconvnet"`` (or a :class:`Semantics` instance) to a factory."""
    if isinstance(name, Semantics):
        return name
    table = {"caffe": CAFFE, "matconvnet": MATCONVNET}
    if name not in table:
        raise ValueError(f"unknown semantics {name!r}; expected one of {sorted(table)}")
    return table[name]
