"""The new Caffe layers' ONNX forms: each exported as it runs (or through its
``export_form``), checked with onnx.checker and run by onnx.reference.ReferenceEvaluator in
float64 against the PyTorch float64 run, batch 2 through a graph traced with batch 1."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx.reference import ReferenceEvaluator
from torch import nn

from porting.export.rewrite import exportable
from porting.layers import activations as act
from porting.layers.axpy import axpy
from porting.layers.deconv import deconvolution
from porting.layers.interp import interp
from porting.layers.normalize import fork_bn, mvn, ssd_normalize
from porting.layers.pooling_stochastic import CaffeStochasticPool2d
from porting.layers.reduce import argmax, reduction
from porting.layers.shapes import crop, permute, shuffle_channel, tile
from porting.layers.unpool import upsample_nearest

from conftest import rel_err

G = torch.Generator().manual_seed(0)
W = {k: torch.randn(*s, generator=G, dtype=torch.float64) for k, s in {
    "slope": (6,), "deconv": (6, 2, 3, 3), "bias": (6,), "scale": (6,), "a": (1, 6, 1, 1),
    "stat": (6,)}.items()}


class Fn(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


LAYERS = {
    "PReLU": lambda x: act.prelu(x, W["slope"]),
    "ELU": lambda x: act.elu(x, 0.75),  # ONNX Elu alpha is float32, as Caffe's is
    "AbsVal": act.absval,
    "BNLL": act.bnll,
    "Exp": lambda x: act.caffe_exp(x, 2.0, 0.5, 0.25),
    "Log": lambda x: act.caffe_log(x.abs() + 0.1, 10.0, 2.0, 0.5),
    "Threshold": lambda x: act.threshold(x, 0.25),
    "Power": lambda x: act.caffe_power(x, 3.0, 0.5, 0.25),
    # group 1: onnx.reference's ConvTranspose mishandles groups (onnxruntime does not)
    "Deconvolution": lambda x: deconvolution(x, W["deconv"], W["bias"][:2], (2, 2), (1, 1),
                                             (2, 2), 1),
    "Crop": lambda x: crop(x, (2, 6, 3, 4), 2, [1, 2]),
    "Permute": lambda x: permute(x, [0, 2, 3, 1]),
    "Tile": lambda x: tile(x, 1, 2),
    "ShuffleChannel": lambda x: shuffle_channel(x, 3),
    "Normalize": lambda x: ssd_normalize(x, W["scale"], False, 1e-6),
    "MVN": lambda x: mvn(x, True, False, 1e-9),
    "BN": lambda x: fork_bn(x, W["scale"], W["bias"], W["stat"], W["stat"].abs(), 1e-5),
    "Reduction": lambda x: reduction(x, "SUMSQ", 1, 0.5),
    "ArgMax": lambda x: argmax(x, 2, True, 1),
    "Axpy": lambda x: axpy(W["a"].expand(x.shape[0], -1, -1, -1), x, x * 2),
    "Interp": lambda x: interp(x, (11, 16), -1, 0),
    "Upsample": lambda x: upsample_nearest(x, 2),
}


def _onnx(net: nn.Module, x: torch.Tensor, check: torch.Tensor) -> np.ndarray:
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), buf, dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    model = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model, full_check=True)
    return ReferenceEvaluator(model).run(None, {"x": check.numpy()})[0]


@pytest.mark.parametrize("name", sorted(LAYERS) + ["Pooling-STOCHASTIC"])
def test_new_layer_onnx_form(name: str) -> None:
    check = torch.randn(2, 6, 7, 9, generator=G, dtype=torch.float64)
    if name == "Pooling-STOCHASTIC":
        net = exportable(nn.Sequential(CaffeStochasticPool2d(3, 2)).double(), check[:1])
    else:
        net = Fn(LAYERS[name])
    with torch.no_grad():
        ref = net(check).numpy()
    got = _onnx(net, check[:1], check)
    assert got.shape == ref.shape
    assert rel_err(got, ref) <= 1e-12, rel_err(got, ref)
