"""The converters' layer units (one per Caffe type, one per ``dagnn.*`` class): what every
unit declares, and the two units that README's "Adding a layer type" shows, each checked on
its own (its field check, its arity, and the graph layer it builds against a float64
computation of the source framework's formula)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from porting.converters.caffe.check import check_net
from porting.converters.caffe.context import Ctx as CaffeCtx
from porting.converters.caffe.layers import UNITS as CAFFE
from porting.converters.caffe.reader import CaffeFormatError, load_net
from porting.converters.caffe.registry import Unit as CaffeUnit
from porting.converters.matconvnet.check import check_model
from porting.converters.matconvnet.context import Ctx as MCNCtx
from porting.converters.matconvnet.layers import UNITS as DAGNN
from porting.converters.matconvnet.layout import MCNLayer, MCNModel
from porting.converters.matconvnet.registry import Unit as DagnnUnit
from porting.converters.matfile import MatFormatError


@pytest.mark.parametrize("units,base,counts", [(CAFFE, CaffeUnit, ("bottoms", "tops")),
                                               (DAGNN, DagnnUnit, ("inputs", "outputs"))])
def test_every_unit_declares_its_arity_and_builds(units, base, counts) -> None:
    """A unit is a documented subclass of its framework's Unit with a valid (min, max) count
    of inputs and outputs and its own ``build`` (``check`` may keep the default)."""
    assert units.functions
    for name, unit in units.functions.items():
        assert issubclass(unit, base) and unit.__doc__, name
        assert unit.build is not base.build, f"{name} has no build"
        for attr in counts:
            lo, hi = getattr(unit, attr)
            assert 0 <= lo and (hi is None or hi >= lo), (name, attr)


RELU = """name: "n"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 4 dim: 5 } } }
layer { name: "relu" type: "ReLU" bottom: "data" top: "relu"
        relu_param { negative_slope: SLOPE } }
"""


def _caffe_net(tmp_path: Path, slope: str, bottom: str = 'bottom: "data"'):
    path = tmp_path / "n.prototxt"
    path.write_text(RELU.replace("SLOPE", slope).replace('bottom: "data"', bottom))
    return load_net(path), str(path)


def test_caffe_relu_unit(tmp_path: Path) -> None:
    net, path = _caffe_net(tmp_path, "nan")
    with pytest.raises(CaffeFormatError, match=r"n.prototxt: layer 'relu' \(ReLU\): "
                       r"relu_param.negative_slope must be a finite number, got nan"):
        check_net(net, path)
    net, path = _caffe_net(tmp_path, "0.1", bottom="")
    with pytest.raises(CaffeFormatError, match="takes exactly 1 bottom, got 0"):
        check_net(net, path)
    net, path = _caffe_net(tmp_path, "0.1")
    assert check_net(net, path).shapes["relu"] == (1, 3, 4, 5)
    ctx = CaffeCtx(net, path, "TEST")
    for layer in net.layers:
        CAFFE.get(layer.type, layer.name, path).build(layer, ctx)
    x = torch.randn(1, 3, 4, 5)
    slope = float(np.float32(0.1))  # a float field of caffe.proto
    ref = np.where(x.double() > 0, x.double(), slope * x.double())
    out = ctx.b.module(["relu"])(x)
    assert np.allclose(out.double().numpy(), ref, rtol=1e-6, atol=0)


def _dagnn(rate: float) -> MCNModel:
    layer = MCNLayer(name="drop", type="dagnn.DropOut", inputs=["x"], outputs=["y"],
                     params=[], block={"rate": rate})
    return MCNModel(layers=[layer], params={}, vars=["x", "y"], meta={}, layout="dagnn",
                    stats_summary={}, source_path="net.mat", mat_version="5")


def test_dagnn_dropout_unit() -> None:
    with pytest.raises(MatFormatError, match=r"net.mat: layer 'drop' \(dagnn.DropOut\): "
                       r"block.rate must be a finite number in \[0, 1\)"):
        check_model(_dagnn(1.0))
    model = _dagnn(0.25)
    assert check_model(model).shapes["y"] == (1, 3, 224, 224)
    ctx = MCNCtx(model)
    ctx.b.inputs.append("x")
    for layer in model.layers:
        DAGNN.get(layer.type, layer.name, model.source_path).build(layer, ctx)
    assert ctx.b.layers[-1]["attrs"] == {"rate": 0.25}
    net = ctx.b.module(["y"]).eval()
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(net(x), x)  # vl_nndropout is the identity at test time
