"""Tests for the Caffe schema and reader against real BVLC Caffe fixtures."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from porting.converters.caffe import proto as cp
from porting.converters.caffe.reader import (
    CaffeFormatError,
    CaffeFormatWarning,
    blob_to_array,
    load_net,
    read_caffemodel,
    read_mean_binaryproto,
    read_prototxt,
    upgrade_v1,
)

from conftest import V1_CAFFEMODEL, caffemodel

FIX = Path(__file__).parent / "fixtures" / "caffe"
V1 = FIX / "caffenet_narrow_v1"
SIAMESE = FIX / "siamese_resnet50_narrow"

# fixture -> (prototxt, folder holding its caffemodel)
FIXTURES = {
    "caffenet_narrow": ("deploy.prototxt", "caffenet_narrow"),
    "caffenet_narrow_odd": ("deploy.prototxt", "caffenet_narrow"),
    "caffenet_narrow_v1": ("deploy.prototxt", "caffenet_narrow_v1"),
    "vgg16_narrow": ("deploy.prototxt", "vgg16_narrow"),
    "resnet50_narrow": ("deploy.prototxt", "resnet50_narrow"),
    "resnet50_narrow_odd": ("deploy.prototxt", "resnet50_narrow"),
    "resnet50_narrow_gp_256x128": ("deploy.prototxt", "resnet50_narrow"),
    "siamese_resnet50_narrow": ("deploy.prototxt", "siamese_resnet50_narrow"),
}


def write_text(path: Path, net) -> Path:
    path.write_text(text_format.MessageToString(net))
    return path


def write_binary(path: Path, net) -> Path:
    path.write_bytes(net.SerializeToString())
    return path


@pytest.fixture(scope="module")
def caffenet():
    return load_net(FIX / "caffenet_narrow" / "deploy.prototxt", caffemodel("caffenet_narrow"))


@pytest.fixture(scope="module")
def siamese():
    return load_net(SIAMESE / "deploy.prototxt", caffemodel("siamese_resnet50_narrow"))


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize(
    ("message", "field", "number"),
    [
        ("NetParameter", "layer", 100),
        ("NetParameter", "layers", 2),
        ("NetParameter", "input", 3),
        ("NetParameter", "input_dim", 4),
        ("NetParameter", "input_shape", 8),
        ("NetParameter", "state", 6),
        ("BlobProto", "shape", 7),
        ("BlobProto", "data", 5),
        ("BlobProto", "double_data", 8),
        ("BlobProto", "num", 1),
        ("BlobProto", "width", 4),
        ("LayerParameter", "blobs", 7),
        ("LayerParameter", "param", 6),
        ("LayerParameter", "include", 8),
        ("LayerParameter", "loss_weight", 5),
        ("LayerParameter", "transform_param", 100),
        ("LayerParameter", "convolution_param", 106),
        ("LayerParameter", "batch_norm_param", 139),
        ("LayerParameter", "scale_param", 142),
        ("LayerParameter", "input_param", 143),
        ("LayerParameter", "reid_data_param", 200),
        ("ParamSpec", "share_mode", 2),
        ("ParamSpec", "decay_mult", 4),
        ("PoolingParameter", "global_pooling", 12),
        ("PoolingParameter", "round_mode", 13),
        ("ConvolutionParameter", "stride", 6),
        ("ConvolutionParameter", "dilation", 18),
        ("EltwiseParameter", "coeff", 2),
        ("ReidDataParameter", "neg_fraction", 13),
        ("ReidDataParameter", "neg_factor", 17),
        ("V1LayerParameter", "param", 1001),
        ("V1LayerParameter", "blob_share_mode", 1002),
        ("V1LayerParameter", "convolution_param", 10),
        ("V1LayerParameter", "inner_product_param", 17),
        ("V1LayerParameter", "loss_weight", 35),
        ("TransformationParameter", "mean_value", 5),
        ("TransformationParameter", "force_gray", 7),
    ],
)
def test_schema_field_numbers(message: str, field: str, number: int) -> None:
    assert cp.message_class(message).DESCRIPTOR.fields_by_name[field].number == number


def test_schema_defaults_and_enums() -> None:
    f32 = np.float32
    assert cp.message_class("PoolingParameter")().round_mode == 0  # CEIL
    assert cp.message_class("PoolingParameter")().stride == 1
    assert cp.message_class("BatchNormParameter")().eps == f32(1e-5)
    lrn = cp.message_class("LRNParameter")()
    assert (lrn.local_size, lrn.alpha, lrn.beta, lrn.k) == (5, 1.0, 0.75, 1.0)
    assert cp.message_class("DropoutParameter")().dropout_ratio == 0.5
    conv = cp.message_class("ConvolutionParameter")()
    assert (conv.bias_term, conv.group) == (True, 1)
    assert cp.message_class("EltwiseParameter")().operation == 1  # SUM
    assert cp.ReidDataParameter().neg_factor == f32(1.01)
    assert cp.ReidDataParameter().neg_limit == 4.0
    assert cp.NetState().phase == 1  # TEST
    layer_type = cp.V1LayerParameter.LayerType
    assert layer_type.Value("CONVOLUTION") == 4
    assert layer_type.Value("SOFTMAX_LOSS") == 21
    assert layer_type.Value("ELTWISE") == 25
    assert layer_type.Value("DECONVOLUTION") == 39


# --------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_fixture_layers_and_blob_shapes_match_caffe(fixture: str) -> None:
    prototxt, weights_folder = FIXTURES[fixture]
    meta = json.loads((FIX / fixture / "meta.json").read_text())
    net = load_net(FIX / fixture / prototxt, caffemodel(weights_folder))
    assert [(layer.name, layer.type) for layer in net.layers] == [
        (layer["name"], layer["type"]) for layer in meta["layers"]
    ]
    for layer, expected in zip(net.layers, meta["layers"], strict=True):
        shapes = [tuple(shape) for shape in expected["param_shapes"]]
        assert len(layer.blobs) == len(shapes), layer.name
        for i, shape in enumerate(shapes):
            blob = layer.blobs[i]
            assert blob.dtype == np.float32
            assert layer.blob_matches(i, shape), (layer.name, i, blob.shape, shape)
            if not layer.blob_legacy[i]:
                assert blob.shape == shape
    assert net.unused_weights == ()
    if "input_shape" in meta:
        assert net.inputs["data"] == tuple(meta["input_shape"])


def test_legacy_input_header_becomes_input_layer() -> None:
    net = load_net(FIX / "resnet50_narrow_odd" / "deploy.prototxt")
    first = net.layers[0]
    assert (first.name, first.type, first.tops) == ("input", "Input", ("data",))
    assert dict(net.inputs) == {"data": (2, 3, 195, 200)}
    assert all(not layer.blobs for layer in net.layers)  # no caffemodel given


def test_variant_prototxts_keep_their_differences() -> None:
    gp = load_net(FIX / "resnet50_narrow_gp_256x128" / "deploy.prototxt")
    pool5 = gp.layer("pool5").params["pooling_param"]
    assert pool5.global_pooling and pool5.pool == 1  # AVE
    plain = load_net(FIX / "resnet50_narrow" / "deploy.prototxt").layer("pool5")
    assert (plain.proto.pooling_param.kernel_size, plain.proto.pooling_param.stride) == (7, 1)
    assert plain.proto.pooling_param.round_mode == 0  # unset: CEIL, Caffe's default
    odd = load_net(FIX / "caffenet_narrow_odd" / "deploy.prototxt")
    assert odd.inputs["data"] == (2, 3, 200, 215)


def test_layer_params_are_the_protobuf_messages(caffenet) -> None:
    conv2 = caffenet.layer("conv2")
    assert set(conv2.params) == {"convolution_param"}
    conv = conv2.params["convolution_param"]
    assert (conv.num_output, list(conv.pad), list(conv.kernel_size), conv.group) == (
        32,
        [2],
        [5],
        2,
    )
    norm1 = caffenet.layer("norm1").params["lrn_param"]
    assert norm1.local_size == 5 and norm1.alpha == np.float32(1e-4) and norm1.norm_region == 0
    assert caffenet.layer("relu1").params == {}
    assert caffenet.layer("conv1").bottoms == ("data",)
    assert caffenet.layer("relu1").tops == ("conv1",)


# --------------------------------------------------------------------------- V1 format


def test_v1_prototxt_upgrade_equals_caffes_upgrade() -> None:
    ours = upgrade_v1(read_prototxt(V1 / "deploy.prototxt"))
    theirs = read_prototxt(V1 / "upgraded_by_caffe_deploy.prototxt")
    assert len(ours.layers) == 0 and len(ours.input) == 0
    assert ours == theirs


def test_v1_caffemodel_upgrade_equals_caffes_upgrade() -> None:
    raw = read_caffemodel(V1_CAFFEMODEL)
    assert len(raw.layers) == 24 and len(raw.layer) == 0
    ours = upgrade_v1(raw)
    digests = json.loads((V1 / "upgraded_by_caffe_weights.sha256.json").read_text())
    ours_digests = {
        layer.name: [
            hashlib.sha256(np.asarray(blob.data, dtype="<f4").tobytes()).hexdigest()
            for blob in layer.blobs
        ]
        for layer in ours.layer
        if len(layer.blobs)
    }
    assert ours_digests == digests
    for layer in ours.layer:
        for blob in layer.blobs:
            del blob.data[:]
    theirs = cp.NetParameter()
    theirs.ParseFromString((V1 / "upgraded_by_caffe_weights.nodata.caffemodel").read_bytes())
    assert ours == theirs  # types, params (lr/decay mults), include rules, 4-D blob dims


def test_v1_net_equals_net_from_caffes_upgraded_files(caffenet) -> None:
    v1 = load_net(V1 / "deploy.prototxt", V1_CAFFEMODEL)
    upgraded = load_net(V1 / "upgraded_by_caffe_deploy.prototxt")
    nodata = cp.NetParameter()
    nodata.ParseFromString((V1 / "upgraded_by_caffe_weights.nodata.caffemodel").read_bytes())
    legacy_dims = {
        layer.name: [(b.num, b.channels, b.height, b.width) for b in layer.blobs]
        for layer in nodata.layer
    }
    digests = json.loads((V1 / "upgraded_by_caffe_weights.sha256.json").read_text())
    assert dict(v1.inputs) == dict(upgraded.inputs) == {"data": (2, 3, 227, 227)}
    assert len(v1.layers) == len(upgraded.layers) == 24
    for ours, theirs in zip(v1.layers, upgraded.layers, strict=True):
        assert (ours.name, ours.type, ours.bottoms, ours.tops) == (
            theirs.name,
            theirs.type,
            theirs.bottoms,
            theirs.tops,
        )
        assert ours.proto == theirs.proto
        assert [b.shape for b in ours.blobs] == legacy_dims.get(ours.name, [])
        assert all(ours.blob_legacy)
        assert [hashlib.sha256(b.tobytes()).hexdigest() for b in ours.blobs] == digests.get(
            ours.name, []
        )
        if ours.blobs:  # and the values are exactly those of the V2 net
            v2 = caffenet.layer(ours.name)
            for i, (a, b) in enumerate(zip(ours.blobs, v2.blobs, strict=True)):
                assert ours.blob_matches(i, b.shape)
                np.testing.assert_array_equal(a.reshape(b.shape), b)
    assert v1.layer("fc6").blobs[0].shape == (1, 1, 512, 1152)
    assert not v1.layer("fc6").blob_matches(0, (1152, 512))
    assert v1.layer("fc6").param_names == (None, None)


@pytest.mark.parametrize(
    ("prototxt", "caffemodel"),
    [
        (FIX / "caffenet_narrow" / "deploy.prototxt", V1_CAFFEMODEL),
        (V1 / "deploy.prototxt", FIX / "caffenet_narrow" / "weights.caffemodel"),
    ],
    ids=["v2-prototxt+v1-caffemodel", "v1-prototxt+v2-caffemodel"],
)
def test_mixed_v1_and_v2_files(prototxt: Path, caffemodel: Path, caffenet) -> None:
    net = load_net(prototxt, caffemodel)
    assert [layer.name for layer in net.layers][1:] == [layer.name for layer in caffenet.layers][1:]
    for layer in net.layers:
        reference = caffenet.layer(layer.name) if layer.type != "Input" else None
        for i, blob in enumerate(layer.blobs):
            np.testing.assert_array_equal(blob.ravel(), reference.blobs[i].ravel())
            assert layer.blob_matches(i, reference.blobs[i].shape)
    # the V1 caffemodel's train-time 'data' and 'loss' layers carry no weights: not listed
    assert net.unused_weights == ()


def test_v1_layer_upgrade_moves_params_and_data_transform_fields() -> None:
    net = cp.NetParameter(name="legacy")
    data = net.layers.add(name="data", type=cp.V1LayerParameter.LayerType.Value("DATA"))
    data.top.extend(["data", "label"])
    data.data_param.source = "train_lmdb"
    data.data_param.mean_file = "mean.binaryproto"
    data.data_param.crop_size = 227
    data.data_param.mirror = True
    data.include.add(phase=0)
    conv = net.layers.add(name="conv", type=cp.V1LayerParameter.LayerType.Value("CONVOLUTION"))
    conv.bottom.append("data")
    conv.top.append("conv")
    conv.param.extend(["w", "b"])
    conv.blob_share_mode.append(1)  # PERMISSIVE
    conv.blobs_lr.extend([1.0, 2.0])
    conv.weight_decay.extend([1.0, 0.0])
    conv.convolution_param.num_output = 4
    loss = net.layers.add(name="loss", type=cp.V1LayerParameter.LayerType.Value("SOFTMAX_LOSS"))
    loss.loss_weight.append(0.5)

    up = upgrade_v1(net)
    assert [layer.type for layer in up.layer] == ["Data", "Convolution", "SoftmaxWithLoss"]
    assert up.layer[0].transform_param.mean_file == "mean.binaryproto"
    assert up.layer[0].transform_param.crop_size == 227 and up.layer[0].transform_param.mirror
    assert not up.layer[0].data_param.HasField("mean_file")
    assert up.layer[0].data_param.source == "train_lmdb"
    assert up.layer[0].include[0].phase == 0
    specs = [(p.name, p.share_mode, p.lr_mult, p.decay_mult) for p in up.layer[1].param]
    assert specs == [("w", 1, 1.0, 1.0), ("b", 0, 2.0, 0.0)]
    assert not up.layer[1].param[1].HasField("share_mode")
    assert up.layer[1].convolution_param.num_output == 4
    assert list(up.layer[2].loss_weight) == [0.5]
    assert len(net.layers) == 3  # the input message is not modified


# --------------------------------------------------------------------------- siamese


def test_siamese_param_names_survive(siamese) -> None:
    fc_id, fc_id_p2 = siamese.layer("fc_id"), siamese.layer("fc_id_p2")
    assert fc_id.param_names == fc_id_p2.param_names == ("fc_id_w", "fc_id_b")
    assert siamese.layer("bn_conv1_p2").param_names == (
        "bn_conv1_mean",
        "bn_conv1_var",
        "bn_conv1_sf",
    )
    assert siamese.param_owners["fc_id_w"] == ("fc_id", 0)
    assert siamese.param_owners["conv1_w"] == ("conv1", 0)
    assert siamese.param_owners["bn_conv1_sf"] == ("bn_conv1", 2)
    assert [spec.lr_mult for spec in siamese.layer("bn_conv1").proto.param] == [0, 0, 0]
    for a, b in zip(fc_id.blobs, fc_id_p2.blobs, strict=True):
        np.testing.assert_array_equal(a, b)
    # shared params hold the same values object, as Caffe's shared blobs share memory
    assert np.shares_memory(fc_id.blobs[0], fc_id_p2.blobs[0])
    assert siamese.warnings == ()


def test_siamese_trunk_is_resnet50_narrow(siamese) -> None:
    resnet = load_net(FIX / "resnet50_narrow" / "deploy.prototxt", caffemodel("resnet50_narrow"))
    compared = 0
    for layer in resnet.layers:
        if layer.blobs and layer.name != "fc1000":
            for a, b in zip(layer.blobs, siamese.layer(layer.name).blobs, strict=True):
                np.testing.assert_array_equal(a, b)
                compared += 1
    assert compared == (53 + 1) + 53 * 3 + 53 * 2  # convs (conv1 has a bias), BatchNorm, Scale


def _phased_train_prototxt(path: Path) -> Path:
    """The siamese train net with its loss/label layers marked TRAIN-only and a
    D-X-Y style ReidData source (also TRAIN-only)."""
    net = read_prototxt(SIAMESE / "train_dropout0.prototxt")
    for layer in net.layer:
        if layer.type == "SoftmaxWithLoss" or layer.name.startswith("label"):
            layer.include.add(phase=0)
    reid = cp.LayerParameter(name="reid_data", type="ReidData", top=["pair_data", "pair_label"])
    reid.include.add(phase=0)
    reid.transform_param.mirror = True
    reid.transform_param.crop_size = 224
    reid.transform_param.mean_value.extend([97.8286, 99.0468, 105.606])
    reid.reid_data_param.source = "market1501/train.lst"
    reid.reid_data_param.batch_size = 16
    reid.reid_data_param.new_height = reid.reid_data_param.new_width = 256
    layers = [reid, *net.layer]
    del net.layer[:]
    net.layer.extend(layers)
    return write_text(path, net)


def test_phase_filtering_on_siamese_train_net(tmp_path: Path) -> None:
    losses = ["loss_id", "loss_id_p2", "loss_v"]
    # The shipped train prototxt has no include/exclude rules: Caffe keeps every layer
    # in both phases, and so do we.
    plain = SIAMESE / "train_dropout0.prototxt"
    for phase in ("TRAIN", "TEST"):
        names = [layer.name for layer in load_net(plain, phase=phase).layers]
        assert [name for name in names if name.startswith("loss")] == losses

    phased = _phased_train_prototxt(tmp_path / "train_phased.prototxt")
    train = load_net(phased, caffemodel("siamese_resnet50_narrow"), phase="TRAIN")
    test = load_net(phased, caffemodel("siamese_resnet50_narrow"), phase="TEST")
    train_names = [layer.name for layer in train.layers]
    test_names = [layer.name for layer in test.layers]
    assert [name for name in train_names if name.startswith("loss")] == losses
    assert [name for name in test_names if name.startswith("loss")] == []
    assert train_names[0] == "reid_data" and "reid_data" not in test_names
    assert set(train_names) - set(test_names) == {
        "reid_data",
        "label",
        "label_p2",
        "label_v",
        *losses,
    }
    assert [train.layer(name).loss_weight for name in losses] == [(0.5,), (0.5,), (1.0,)]
    assert "label" in train.inputs and "label" not in test.inputs
    reid = train.layer("reid_data").params["reid_data_param"]
    assert (reid.batch_size, reid.new_height, reid.pos_fraction, reid.neg_limit) == (16, 256, 1, 4)
    mean = train.layer("reid_data").params["transform_param"].mean_value
    np.testing.assert_array_equal(mean, np.float32([97.8286, 99.0468, 105.606]))
    assert train.layer("drop_v").params["dropout_param"].dropout_ratio == 0.0
    for name in ("fc_v", "conv1_p2"):
        for a, b in zip(train.layer(name).blobs, test.layer(name).blobs, strict=True):
            np.testing.assert_array_equal(a, b)


def test_include_exclude_level_and_stage_rules(tmp_path: Path) -> None:
    text = """
    name: "rules"
    state { stage: "deploy" }
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }
    layer { name: "train_only" type: "ReLU" bottom: "x" top: "a" include { phase: TRAIN } }
    layer { name: "not_train" type: "ReLU" bottom: "x" top: "b" exclude { phase: TRAIN } }
    layer { name: "deploy" type: "ReLU" bottom: "x" top: "c" include { stage: "deploy" } }
    layer { name: "not_deploy" type: "ReLU" bottom: "x" top: "d"
            include { phase: TEST not_stage: "deploy" } }
    layer { name: "level2" type: "ReLU" bottom: "x" top: "e" include { min_level: 2 } }
    layer { name: "either" type: "ReLU" bottom: "x" top: "f"
            include { phase: TRAIN } include { stage: "extra" } }
    """
    path = tmp_path / "rules.prototxt"
    path.write_text(text)

    def names(**kwargs) -> list[str]:
        return [layer.name for layer in load_net(path, **kwargs).layers]

    assert names(phase="TEST") == ["in", "not_train", "deploy"]
    assert names(phase="TRAIN") == ["in", "train_only", "deploy", "either"]
    assert names(phase="TEST", level=2) == ["in", "not_train", "deploy", "level2"]
    assert names(phase="TEST", stages=["extra"]) == ["in", "not_train", "deploy", "either"]


# --------------------------------------------------------------------------- weights


def _caffenet_model_without(path: Path, *drop: str) -> Path:
    net = read_caffemodel(caffemodel("caffenet_narrow"))
    kept = [layer for layer in net.layer if layer.name not in drop]
    del net.layer[:]
    net.layer.extend(kept)
    return write_binary(path, net)


def test_missing_weights_for_a_layer_is_an_error(tmp_path: Path) -> None:
    model = _caffenet_model_without(tmp_path / "no_conv3.caffemodel", "conv3")
    prototxt = FIX / "caffenet_narrow" / "deploy.prototxt"
    with pytest.raises(
        CaffeFormatError, match=r"no_conv3\.caffemodel: no weights for layer 'conv3'"
    ):
        load_net(prototxt, model)
    # a real mismatch: the siamese heads are not in the plain ResNet-50 caffemodel
    with pytest.raises(CaffeFormatError, match=r"no weights for layer 'fc_id' \(Convolution\)"):
        load_net(SIAMESE / "deploy.prototxt", caffemodel("resnet50_narrow"))
    with pytest.raises(CaffeFormatError, match="no weights for layer 'fc1000'"):
        load_net(FIX / "resnet50_narrow" / "deploy.prototxt", caffemodel("siamese_resnet50_narrow"))


def test_unused_caffemodel_layers_are_listed(tmp_path: Path, caffenet) -> None:
    net = read_prototxt(FIX / "caffenet_narrow" / "deploy.prototxt")
    kept = [layer for layer in net.layer if layer.name not in ("fc8", "prob")]
    del net.layer[:]
    net.layer.extend(kept)
    trimmed = load_net(write_text(tmp_path / "no_fc8.prototxt", net), caffemodel("caffenet_narrow"))
    assert trimmed.unused_weights == ("fc8",)
    np.testing.assert_array_equal(trimmed.layer("fc7").blobs[0], caffenet.layer("fc7").blobs[0])


def test_shared_layer_absent_from_caffemodel_borrows_the_shared_blobs(tmp_path: Path) -> None:
    model = read_caffemodel(caffemodel("siamese_resnet50_narrow"))
    kept = [layer for layer in model.layer if layer.name != "fc_id_p2"]
    del model.layer[:]
    model.layer.extend(kept)
    path = write_binary(tmp_path / "no_p2.caffemodel", model)
    net = load_net(SIAMESE / "deploy.prototxt", path)
    fc_id, fc_id_p2 = net.layer("fc_id"), net.layer("fc_id_p2")
    assert [b.shape for b in fc_id_p2.blobs] == [(751, 256, 1, 1), (751,)]
    for a, b in zip(fc_id.blobs, fc_id_p2.blobs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_shared_param_that_differs_warns_and_last_copy_wins(tmp_path: Path) -> None:
    model = read_caffemodel(caffemodel("siamese_resnet50_narrow"))
    later = next(layer for layer in model.layer if layer.name == "fc_id_p2")
    later.blobs[1].data[0] += 1.0
    changed = float(later.blobs[1].data[0])
    path = write_binary(tmp_path / "differs.caffemodel", model)
    with pytest.warns(CaffeFormatWarning, match="shared param 'fc_id_b' differs"):
        net = load_net(SIAMESE / "deploy.prototxt", path)
    # Caffe copies layers in file order into the shared blob: fc_id_p2 comes last.
    assert net.layer("fc_id").blobs[1][0] == np.float32(changed)
    assert net.layer("fc_id_p2").blobs[1][0] == np.float32(changed)
    assert len(net.warnings) == 1


def test_blob_count_sanity(tmp_path: Path) -> None:
    model = read_caffemodel(caffemodel("caffenet_narrow"))
    conv1 = next(layer for layer in model.layer if layer.name == "conv1")
    del conv1.blobs[1]
    path = write_binary(tmp_path / "no_bias.caffemodel", model)
    prototxt = FIX / "caffenet_narrow" / "deploy.prototxt"
    with pytest.raises(
        CaffeFormatError, match=r"layer 'conv1' \(Convolution\): has 1 blobs, the layer needs 2"
    ):
        load_net(prototxt, path)

    net = read_prototxt(prototxt)
    next(layer for layer in net.layer if layer.name == "conv1").convolution_param.bias_term = False
    no_bias = write_text(tmp_path / "no_bias.prototxt", net)
    with pytest.raises(CaffeFormatError, match="has 2 blobs, the layer needs 1"):
        load_net(no_bias, caffemodel("caffenet_narrow"))
    assert load_net(no_bias, path).layer("conv1").blobs[0].shape == (12, 3, 11, 11)


def test_blob_values_must_fill_the_shape(tmp_path: Path) -> None:
    model = read_caffemodel(caffemodel("caffenet_narrow"))
    fc8 = next(layer for layer in model.layer if layer.name == "fc8")
    fc8.blobs[0].shape.dim[0] = 126
    path = write_binary(tmp_path / "bad_shape.caffemodel", model)
    with pytest.raises(
        CaffeFormatError, match=r"layer 'fc8' \(InnerProduct\) blob 0: has 64000 values but"
    ):
        load_net(FIX / "caffenet_narrow" / "deploy.prototxt", path)


# --------------------------------------------------------------------------- bad files


def test_truncated_caffemodel(tmp_path: Path) -> None:
    data = caffemodel("caffenet_narrow").read_bytes()
    path = tmp_path / "truncated.caffemodel"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CaffeFormatError, match=r"truncated\.caffemodel: not a valid binary"):
        read_caffemodel(path)


def test_flipped_bytes_in_caffemodel(tmp_path: Path) -> None:
    data = bytearray(caffemodel("vgg16_narrow").read_bytes())
    assert data[0] == 0x0A  # field 1 (name), length-delimited
    data[0] ^= 0x05  # wire type 7: invalid
    path = tmp_path / "flipped.caffemodel"
    path.write_bytes(bytes(data))
    with pytest.raises(CaffeFormatError, match=r"flipped\.caffemodel: not a valid binary"):
        read_caffemodel(path)


def test_parsed_caffemodel_does_not_depend_on_the_file(tmp_path: Path) -> None:
    """The file is memory-mapped for parsing; the message must own its data afterwards."""
    path = tmp_path / "w.caffemodel"
    path.write_bytes(caffemodel("caffenet_narrow").read_bytes())
    net = read_caffemodel(path)
    names = [layer.name for layer in net.layer]
    first = np.asarray(net.layer[1].blobs[0].data, dtype=np.float32).copy()
    path.write_bytes(bytes(path.stat().st_size))  # same size, all zeros
    path.unlink()
    assert [layer.name for layer in net.layer] == names
    np.testing.assert_array_equal(np.asarray(net.layer[1].blobs[0].data, np.float32), first)
    assert np.abs(first).max() > 0


def test_caffemodel_with_no_layers(tmp_path: Path) -> None:
    path = tmp_path / "empty.caffemodel"
    path.write_bytes(b"")
    with pytest.raises(CaffeFormatError, match=r"empty\.caffemodel: caffemodel contains no layers"):
        read_caffemodel(path)


def test_files_swapped() -> None:
    with pytest.raises(CaffeFormatError, match="looks like a text prototxt"):
        read_caffemodel(FIX / "vgg16_narrow" / "deploy.prototxt")
    with pytest.raises(CaffeFormatError, match=r"weights\.caffemodel: not a text prototxt"):
        read_prototxt(caffemodel("vgg16_narrow"))


def test_prototxt_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.prototxt"
    path.write_text('name: "x"\nlayer {\n  name: "a"\n  type: "ReLU"\n  bottom "x"\n}\n')
    with pytest.raises(CaffeFormatError, match=r"broken\.prototxt:5:\d+: ") as info:
        read_prototxt(path)
    assert "\n" not in str(info.value)
    path.write_text('layer {\n  name: "p"\n  type: "Pooling"\n  pooling_param { pool: MAXX }\n}\n')
    with pytest.raises(CaffeFormatError, match=r"broken\.prototxt:4:\d+: .*MAXX"):
        load_net(path)


def test_unknown_prototxt_fields_warn_but_parse(tmp_path: Path) -> None:
    path = tmp_path / "custom.prototxt"
    path.write_text(
        'name: "custom"\n'
        'layer { name: "in" type: "Input" top: "x" top: "y"\n'
        "        input_param { shape { dim: 2 dim: 8 } } }\n"
        'layer { name: "pair" type: "PairEuclidean" bottom: "x" top: "d"\n'
        "        pair_euclidean_param { margin: 1.5 norm { p: 2 } }\n"
        "        weird_flags: [1, 2, 3] }\n"
        'layer { name: "relu" type: "ReLU" bottom: "d" top: "d"\n'
        "        relu_param { negative_slope: 0.1 slope_mode: FAST } }\n"
    )
    with pytest.warns(CaffeFormatWarning) as record:
        net = load_net(path)
    messages = [str(w.message) for w in record]
    assert len(messages) == 3
    expected = [
        "custom.prototxt:5:9: unknown field 'pair_euclidean_param' in caffe.LayerParameter",
        "custom.prototxt:6:9: unknown field 'weird_flags' in caffe.LayerParameter",
        "custom.prototxt:8:42: unknown field 'slope_mode' in caffe.ReLUParameter",
    ]
    for message, start in zip(messages, expected, strict=True):
        assert message.startswith(f"{tmp_path}/{start}")
    assert net.warnings == tuple(messages)
    assert [layer.type for layer in net.layers] == ["Input", "PairEuclidean", "ReLU"]
    assert net.layer("relu").params["relu_param"].negative_slope == np.float32(0.1)
    assert dict(net.inputs) == {"x": (2, 8), "y": (2, 8)}

    # an unknown field does not hide a real syntax error elsewhere
    path.write_text('layer { name: "a" custom_thing: 1 }\nlayer { name: "b" type: }\n')
    with pytest.raises(CaffeFormatError, match=r"custom\.prototxt:2:"):
        load_net(path)


def test_unknown_binary_fields_are_preserved(tmp_path: Path) -> None:
    net = cp.NetParameter(name="n")
    layer = net.layer.add(name="conv", type="Convolution", bottom=["x"], top=["y"])
    layer.convolution_param.num_output = 1
    layer.blobs.add(data=[1.5], shape=cp.BlobShape(dim=[1, 1, 1, 1]))
    layer.blobs.add(data=[0.5], shape=cp.BlobShape(dim=[1]))
    layer_bytes = layer.SerializeToString() + bytes([0xE8, 0x0C, 0x2A])  # field 205 = 42
    net_bytes = cp.NetParameter(name="n").SerializeToString()
    net_bytes += bytes([0xA2, 0x06, len(layer_bytes)]) + layer_bytes  # field 100 (layer)
    net_bytes += bytes([0xB8, 0x3E, 0x07])  # unknown top-level field 999 = 7
    path = tmp_path / "unknown.caffemodel"
    path.write_bytes(net_bytes)
    parsed = read_caffemodel(path)
    assert parsed.layer[0].name == "conv"
    assert parsed.SerializeToString() == net_bytes  # unknown fields round-trip unchanged
    upgraded = upgrade_v1(parsed)
    assert upgraded.layer[0].SerializeToString().endswith(bytes([0xE8, 0x0C, 0x2A]))
    prototxt = tmp_path / "conv.prototxt"
    prototxt.write_text(
        'input: "x" input_shape { dim: 1 dim: 1 dim: 1 dim: 1 }\n'
        'layer { name: "conv" type: "Convolution" bottom: "x" top: "y"\n'
        "        convolution_param { num_output: 1 kernel_size: 1 } }\n"
    )
    loaded = load_net(prototxt, path)
    assert loaded.layer("conv").blobs[0].tolist() == [[[[1.5]]]]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            'layer { name: "a" type: "ReLU" include { phase: TRAIN } exclude { phase: TEST } }',
            "layer 'a' has both include and exclude rules",
        ),
        (
            # BVLC's Net accepts two ReLUs named alike; not two layers whose weights are
            # matched by that name (issue 21)
            'layer { name: "a" type: "InnerProduct" }\nlayer { name: "a" type: "InnerProduct" }',
            "2 layers are named 'a' in phase TEST",
        ),
        ('layer { name: "a" bottom: "x" }', "layer #0 'a' has no type"),
        ('input: "x" input_dim: 1 input_dim: 3\nlayer { name: "a" type: "ReLU" }', "need 4"),
        ('input: "x" input: "y" input_shape { dim: 1 }', "2 'input' names but 1 'input_shape'"),
        ('name: "empty"', "prototxt defines no layers"),
        (
            'layer { name: "in" type: "Input" top: "a" top: "b" top: "c"\n'
            "  input_param { shape { dim: 1 } shape { dim: 2 } } }",
            "has 3 tops but 2 shapes",
        ),
        (
            'layers { name: "a" type: RELU }\nlayer { name: "b" type: "ReLU" }',
            "both V1 'layers' and V2 'layer'",
        ),
        (
            'layer { name: "bn" type: "BatchNorm" param { } param { } param { } param { } }',
            "has 4 param specs but only 3 blobs",
        ),
    ],
)
def test_bad_prototxt_content(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.prototxt"
    path.write_text(text)
    with pytest.raises(CaffeFormatError, match=match) as info:
        load_net(path)
    assert str(info.value).startswith(str(path))


def test_v0_layers_are_refused(tmp_path: Path) -> None:
    net = cp.NetParameter()
    old = net.layers.add()
    old.layer.name = "conv1"
    old.layer.type = "conv"
    path = write_binary(tmp_path / "v0.caffemodel", net)
    with pytest.raises(CaffeFormatError, match=r"v0\.caffemodel: V1 layer #0 .*\(V0\)"):
        upgrade_v1(read_caffemodel(path), str(path))


def test_bad_phase() -> None:
    with pytest.raises(ValueError, match="phase must be one of"):
        load_net(FIX / "vgg16_narrow" / "deploy.prototxt", phase="test")


# --------------------------------------------------------------------------- blobs and means


def test_blob_to_array_shapes_and_precedence() -> None:
    legacy = cp.BlobProto(num=1, channels=1, height=2, width=3, data=np.arange(6.0).tolist())
    array, is_legacy = blob_to_array(legacy)
    assert is_legacy and array.shape == (1, 1, 2, 3) and array.dtype == np.float32
    both = cp.BlobProto(num=0, shape=cp.BlobShape(dim=[2]), data=[1.0, 2.0])
    with pytest.raises(CaffeFormatError, match="has 2 values but its shape"):
        blob_to_array(both, "here")  # Caffe reads the legacy dims first: (0, 0, 0, 0)
    doubles = cp.BlobProto(shape=cp.BlobShape(dim=[2]), data=[9.0, 9.0], double_data=[0.1, 0.2])
    np.testing.assert_array_equal(blob_to_array(doubles)[0], np.float32([0.1, 0.2]))
    scalar = cp.BlobProto(data=[4.0])
    assert blob_to_array(scalar)[0].shape == ()


def test_read_mean_binaryproto(tmp_path: Path) -> None:
    values = np.arange(3 * 4 * 5, dtype=np.float32) * 0.5
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(
        cp.BlobProto(num=1, channels=3, height=4, width=5, data=values.tolist()).SerializeToString()
    )
    mean = read_mean_binaryproto(path)
    assert mean.shape == (3, 4, 5) and mean.dtype == np.float32
    np.testing.assert_array_equal(mean, values.reshape(3, 4, 5))

    path.write_bytes(
        cp.BlobProto(
            shape=cp.BlobShape(dim=[3, 1, 1]), double_data=[104.0, 117.0, 123.0]
        ).SerializeToString()
    )
    np.testing.assert_array_equal(read_mean_binaryproto(path).ravel(), [104.0, 117.0, 123.0])

    path.write_bytes(
        cp.BlobProto(num=2, channels=1, height=1, width=1, data=[1.0, 2.0]).SerializeToString()
    )
    with pytest.raises(CaffeFormatError, match=r"mean\.binaryproto: mean blob has shape"):
        read_mean_binaryproto(path)
    path.write_bytes(b"\x0f\x00garbage")
    with pytest.raises(CaffeFormatError, match=r"mean\.binaryproto: not a valid binary"):
        read_mean_binaryproto(path)


def test_reading_emits_no_stray_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_prototxt(SIAMESE / "train_dropout0.prototxt")
        load_net(V1 / "deploy.prototxt", V1_CAFFEMODEL)


def test_custom_layer_weights_and_sharing(tmp_path: Path) -> None:
    prototxt = tmp_path / "custom.prototxt"
    prototxt.write_text(
        'input: "x" input_shape { dim: 1 dim: 2 }\n'
        'layer { name: "a" type: "MyAffine" bottom: "x" top: "y" param { name: "w" } }\n'
        'layer { name: "b" type: "MyAffine" bottom: "y" top: "z"\n'
        '        param { name: "u" } param { name: "w" } }\n'
    )
    model = cp.NetParameter()
    model.layer.add(name="a").blobs.add(shape=cp.BlobShape(dim=[2]), data=[1.0, 2.0])
    path = write_binary(tmp_path / "custom.caffemodel", model)
    net = load_net(prototxt, path)
    np.testing.assert_array_equal(net.layer("a").blobs[0], [1.0, 2.0])
    # 'b' (unknown type, not in the caffemodel) borrows nothing: its first blob 'u' is unowned
    assert net.layer("b").blobs == () and net.layer("b").param_names == ("u", "w")
    assert net.param_owners == {"w": ("a", 0), "u": ("b", 0)}

    model.layer.add(name="b").blobs.add(shape=cp.BlobShape(dim=[2]), data=[3.0, 4.0])
    path = write_binary(tmp_path / "custom.caffemodel", model)
    with pytest.raises(CaffeFormatError, match=r"layer 'b' has 1 blobs but param spec #1 \('w'\)"):
        load_net(prototxt, path)
