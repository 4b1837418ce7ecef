"""Fast by default, exact on demand: the one switch between the two arithmetics.

``exact=True`` is the source framework's arithmetic, bit for bit what the layers computed
before fast forms existed (BatchNorm as ``(x - mean) / sigma * mult + bias``, Caffe's
``Scale`` as a multiply then an add, ReLUs out of place, a converted Caffe graph's
convolutions as im2col + GEMM). ``exact=False`` (what :func:`porting.load`,
:class:`~porting.FeatureExtractor` and ``validate`` use unless asked otherwise) changes only
test-time arithmetic, never the maths:

* BatchNorm and Scale with frozen statistics become one per-channel ``x * a + b``
  (:func:`~porting.layers.batchnorm.channel_affine`); in the canonical ResNets one pass for
  BatchNorm + Scale, over the convolution's output in place when no gradient is recorded
  (:func:`~porting.layers.batchnorm.conv_bn`);
* ReLUs run in place (and a ResNet block adds its shortcut in place before its ReLU);
* converted graphs get the same per-layer forms (:attr:`GraphModule.exact`); their
  convolution algorithm stays what :func:`porting.graph.default_conv` says, chosen by the
  measured agreement (see bench/README.md, "Inference speed").

Training-mode BatchNorm (batch statistics) is the same in both. Everything here is a mode
on the existing modules: no parameter, buffer or state_dict key changes, and
``set_exact(module, True)`` restores the exact path at any time.
"""

from __future__ import annotations

from typing import TypeVar

from torch import nn

from porting.graph import GraphModule
from porting.layers.batchnorm import FastForm

M = TypeVar("M", bound=nn.Module)


def set_exact(module: M, exact: bool) -> M:
    """Switch every layer of ``module`` to the exact (``True``) or fast form; returns it."""
    exact = bool(exact)
    for m in module.modules():
        if isinstance(m, FastForm):
            m.exact = exact
        elif isinstance(m, nn.ReLU):
            m.inplace = not exact
        elif isinstance(m, GraphModule):
            m.exact = exact
    module.inference_exact = exact
    return module


def fast_inference(module: M) -> M:
    """The fast test-time forms on (what loading does by default)."""
    return set_exact(module, False)


def exact_inference(module: M) -> M:
    """The bit-for-bit source arithmetic (``porting.load(..., exact=True)``)."""
    return set_exact(module, True)


def is_exact(module: nn.Module) -> bool:
    """Whether ``module`` runs the exact forms (a module never switched is exact)."""
    return bool(getattr(module, "inference_exact", True))
