"""The converters' layer units (one per Caffe type, one per ``dagnn.*`` class): what every
unit declares (its shape rule, a Caffe type's blob count, the SimpleNN types a ``dagnn.*``
unit reads), and the two units that README's "Adding a layer type" shows, each checked on its
own (its field check, its arity, and the graph layer it builds against a float64 computation
of the source framework's formula)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from porting.converters.caffe.check import check_net
from porting.converters.caffe.context import Ctx as CaffeCtx
from porting.converters.caffe.layers import UNITS as CAFFE
from porting.converters.caffe.proto import LayerParameter
from porting.converters.caffe.reader import CaffeFormatError, load_net
from porting.converters.caffe.registry import Unit as CaffeUnit
from porting.converters.caffe.registry import expected_blobs
from porting.converters.common import Registry
from porting.converters.matconvnet.check import check_model
from porting.converters.matconvnet.context import Ctx as MCNCtx
from porting.converters.matconvnet.layers import UNITS as DAGNN
from porting.converters.matconvnet.layout import MCNLayer, MCNModel
from porting.converters.matconvnet.model import build_model
from porting.converters.matconvnet.registry import Unit as DagnnUnit
from porting.converters.matconvnet.registry import simplenn_index
from porting.converters.matconvnet.simplenn import SIMPLENN_UNITS
from porting.converters.matfile import MatCell, MatFormatError, MatStruct


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


@pytest.mark.parametrize("units,base", [(CAFFE, CaffeUnit), (DAGNN, DagnnUnit)])
def test_every_unit_has_a_shape_rule(units, base) -> None:
    """Every unit says its outputs' shapes, so a shape error after it is caught by the check."""
    assert [name for name, unit in units.functions.items() if unit.check is base.check] == []


def _blobs(kind: str, bottoms: int = 1, bias: bool = True) -> int | None:
    layer = LayerParameter(type=kind, bottom=["a", "b"][:bottoms])
    for section in ("convolution_param", "inner_product_param", "scale_param", "embed_param"):
        getattr(layer, section).bias_term = bias
    return expected_blobs(CAFFE, layer)


def test_caffe_blob_counts_come_from_the_units() -> None:
    """What Caffe's ``LayerSetUp`` creates, as each unit declares it (the reader holds a
    caffemodel and the param specs to it); a type without unit or count: unknown."""
    assert _blobs("Convolution") == 2 and _blobs("Convolution", bias=False) == 1
    assert _blobs("Deconvolution", bias=False) == _blobs("DepthwiseConvolution", bias=False) == 1
    assert _blobs("InnerProduct") == 2 and _blobs("Embed", bias=False) == 1
    assert _blobs("BatchNorm") == 3 and _blobs("PReLU") == 1 and _blobs("Normalize") == 1
    assert _blobs("Scale") == 2 and _blobs("Scale", bottoms=2) == 1
    assert _blobs("Bias") == 1 and _blobs("Bias", bottoms=2) == 0
    assert _blobs("ReLU") == _blobs("Split") == _blobs("Data") == 0
    assert _blobs("ContrastiveLoss") == _blobs("Silence") == 0  # no unit, no blobs either
    assert _blobs("BN") is None and _blobs("NoSuchType") is None
    units = Registry("caffe")
    units.register("Twice")(type("Twice", (CaffeUnit,), {"blobs": 2}))
    assert expected_blobs(units, LayerParameter(type="Twice")) == 2


SHAPES = """name: "n"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 4 dim: 5 } } }
layer { name: "sig" type: "Sigmoid" bottom: "data" top: "sig" }
layer { name: "tanh" type: "TanH" bottom: "sig" top: "tanh" }
layer { name: "split" type: "Split" bottom: "tanh" top: "a" top: "b" }
"""


def test_caffe_shapes_flow_through_sigmoid_tanh_and_split(tmp_path: Path) -> None:
    path = tmp_path / "n.prototxt"
    path.write_text(SHAPES)
    shapes = check_net(load_net(path), str(path)).shapes
    assert [shapes[t] for t in ("sig", "tanh", "a", "b")] == [(1, 3, 4, 5)] * 4
    path.write_text(SHAPES + 'layer { name: "pool" type: "Pooling" bottom: "b" top: "pool" '
                             "pooling_param { kernel_size: 7 } }\n")
    with pytest.raises(CaffeFormatError, match=r"n.prototxt: layer 'pool' \(Pooling\): "
                       r"pooling_param: kernel_h 7 is larger than the bottom 4"):
        check_net(load_net(path), str(path))


def _struct(**fields) -> MatStruct:
    return MatStruct(list(fields), (1, 1), [fields])


_F = np.ones((3, 3, 2, 4), np.float32)
#: vl_simplenn's layer types, each with the fields it cannot do without.
SIMPLENN = {
    "conv": {"weights": MatCell((1, 2), [_F, np.zeros((1, 4), np.float32)])},
    "convt": {"weights": MatCell((1, 1), [_F])},
    "pool": {"pool": np.array([[2.0, 2.0]])},
    "normalize": {}, "lrn": {}, "dropout": {}, "relu": {}, "sigmoid": {}, "softmax": {},
    "softmaxloss": {},
    "bnorm": {"weights": MatCell((1, 2), [np.ones((1, 2), np.float32),
                                          np.zeros((1, 2), np.float32)])},
    "noffset": {"param": np.array([[1.0, 0.5]])},
    "spnorm": {"param": np.array([[2.0, 2.0, 10.0, 2.0]])},
    "pdist": {},
}


def test_every_simplenn_type_is_read_by_one_dagnn_unit() -> None:
    """Each SimpleNN type is declared by exactly the unit that reads it (``simplenn`` and
    its own ``from_simplenn``), and a layer of that type is read as that unit's class."""
    assert set(SIMPLENN_UNITS) == set(SIMPLENN)
    for kind, fields in SIMPLENN.items():
        name, unit = SIMPLENN_UNITS[kind]
        assert DAGNN.functions[name] is unit and kind in unit.simplenn, kind
        assert unit.from_simplenn is not DagnnUnit.from_simplenn, kind
        model = build_model({"layers": MatCell((1, 1), [_struct(name="x1", type=kind,
                                                                **fields)])})
        layer = model.layers[0]
        assert layer.type == name, kind
        lo, hi = unit.inputs  # the reader's label input fits the class's arity
        assert lo <= len(layer.inputs) and (hi is None or len(layer.inputs) <= hi), kind
    units = {unit for _, unit in SIMPLENN_UNITS.values()}
    for unit in DAGNN.functions.values():  # and no unit reads a type it does not declare
        assert (unit in units) == bool(unit.simplenn), unit


def test_a_simplenn_type_declared_twice_is_refused() -> None:
    units = Registry("matconvnet")
    for cls in ("dagnn.A", "dagnn.B"):
        units.register(cls)(type(cls, (DagnnUnit,), {"simplenn": ("relu",)}))
    with pytest.raises(RuntimeError, match="'relu' is declared by both dagnn.A and dagnn.B"):
        simplenn_index(units)


def test_simplenn_defaults_come_from_the_unit() -> None:
    """An old SimpleNN layer without ``stride``/``leak``/``param`` gets vl_simplenn_tidy's
    value, which the unit declares; a field that the file has wins."""
    layers = MatCell((1, 3), [
        _struct(name="c", type="conv", weights=MatCell((1, 1), [_F]), pad=np.array([[1.0]])),
        _struct(name="r", type="relu"),
        _struct(name="n", type="lrn")])
    model = build_model({"layers": layers})
    assert model.layer("c").block == {"size": [3, 3, 2, 4], "hasBias": False,
                                      "pad": [1, 1, 1, 1], "stride": [1, 1],
                                      "dilate": [1, 1], "opts": []}
    assert model.layer("r").block == {"leak": 0.0}
    assert model.layer("n").block == {"param": [5.0, 1.0, 0.0001 / 5, 0.75]}


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
