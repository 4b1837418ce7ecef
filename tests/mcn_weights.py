"""Test-side reader of MatConvNet weights (scipy only), independent of porting.converters.

It lets the model definitions be checked against MatConvNet's own outputs without going
through the converter under test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
import torch
from torch import nn


def _s(a) -> str:
    return str(np.asarray(a).ravel()[0])


def simplenn_weights(path: Path) -> dict[str, list[np.ndarray]]:
    """SimpleNN ``layers{i}.weights`` by layer name."""
    mat = scipy.io.loadmat(path, squeeze_me=False)
    out = {}
    for cell in mat["layers"].ravel():
        layer = cell[0, 0]
        if "weights" in layer.dtype.names and layer["weights"].size:
            out[_s(layer["name"])] = [np.asarray(w) for w in layer["weights"].ravel()]
    return out


def dagnn_params(path: Path) -> dict[str, np.ndarray]:
    """DagNN ``params(i).value`` by name, from a top-level struct or from ``net``."""
    mat = scipy.io.loadmat(path, squeeze_me=False)
    net = mat["net"][0, 0] if "net" in mat else mat
    return {_s(p["name"]): np.asarray(p["value"]) for p in net["params"].ravel()}


def conv_weight(w: np.ndarray) -> torch.Tensor:
    """MatConvNet H x W x Cin x Cout (trailing singleton dims may be dropped) to OIHW."""
    w = w.reshape(w.shape + (1,) * (4 - w.ndim))
    return torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))


def load_simplenn(model: nn.Module, weights: dict[str, list[np.ndarray]]) -> None:
    for name, (f, b) in weights.items():
        conv = getattr(model, name)
        with torch.no_grad():
            conv.weight.copy_(conv_weight(f))
            conv.bias.copy_(torch.from_numpy(b.ravel()))


def load_dagnn_resnet(model: nn.Module, params: dict[str, np.ndarray], prefix: str = "") -> None:
    """Params ``<conv>_filter``/``_bias`` and ``<bn>_mult``/``_bias``/``_moments``."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for path, name in model.caffe_layer_names().items():
            mod = modules[path]
            if isinstance(mod, nn.Conv2d):
                mod.weight.copy_(conv_weight(params[prefix + name + "_filter"]))
                if mod.bias is not None:
                    mod.bias.copy_(torch.from_numpy(params[prefix + name + "_bias"].ravel()))
            elif hasattr(mod, "moments"):
                mod.mult.copy_(torch.from_numpy(params[name + "_mult"].ravel()))
                mod.bias.copy_(torch.from_numpy(params[name + "_bias"].ravel()))
                mod.moments.copy_(torch.from_numpy(params[name + "_moments"]))


def resnet_var_names(model: nn.Module) -> dict[str, str]:
    """Module path -> the MatConvNet var holding its output after import-caffe.py.

    Each in-place Caffe layer appends an ``x``: BN gives ``<conv>x``, the folded Scale's
    ``<conv>xx`` disappears, the ReLU gives ``<conv>xxx``; a block's Sum is ``res2a`` and
    its ReLU ``res2ax``.
    """
    out = {"conv1": "conv1", "bn_conv1": "conv1x", "conv1_relu": "conv1xxx", "pool1": "pool1",
           "pool5": "pool5"}
    for block in model.blocks:
        for br in ("branch1", "branch2a", "branch2b", "branch2c"):
            out[f"{block}.{br}"] = f"{block}_{br}"
            out[f"{block}.bn_{br}"] = f"{block}_{br}x"
            out[f"{block}.{br}_relu"] = f"{block}_{br}xxx"
        out[f"{block}.relu"] = f"{block}x"
    return out
