"""MatConvNet files of every layout -> one normalised MCNModel."""

from __future__ import annotations

import struct
from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from matv73 import assert_same, save_v73, write_object_standin

from porting.converters.matconvnet.model import (
    MCNModel,
    build_model,
    read_matconvnet,
)
from porting.converters.matfile import MatCell, MatFormatError, MatStruct, load_mat

from conftest import FIXTURES

MCN = FIXTURES / "matconvnet"
FILES = {
    "caffenet": MCN / "caffenet_narrow" / "model.mat",
    "caffenet_legacy": MCN / "caffenet_narrow" / "model_legacy_prebeta17.mat",
    "vgg16": MCN / "vgg16_narrow" / "model.mat",
    "resnet50": MCN / "resnet50_narrow" / "model.mat",
    "resnet50_import": MCN / "resnet50_narrow" / "model_import_caffe_py.mat",
    "two_stream": MCN / "resnet52_2stream_narrow" / "model.mat",
}
CAFFENET_LAYERS = (
    "conv1 relu1 pool1 norm1 conv2 relu2 pool2 norm2 conv3 relu3 conv4 relu4 conv5 relu5 "
    "pool5 fc6 relu6 fc7 relu7 fc8 prob"
).split()
SIMPLENN_TYPES = {"conv": "dagnn.Conv", "relu": "dagnn.ReLU", "pool": "dagnn.Pooling",
                  "norm": "dagnn.LRN", "fc": "dagnn.Conv", "drop": "dagnn.DropOut",
                  "prob": "dagnn.SoftMax"}
# layout, layers, params, vars (fixture READMEs)
EXPECTED = {
    "caffenet": ("simplenn", 21, 16, 22),
    "caffenet_legacy": ("simplenn-legacy", 21, 16, 22),
    "vgg16": ("simplenn", 39, 32, 40),
    "resnet50": ("dagnn", 175, 215, 176),
    "resnet50_import": ("dagnn-import", 175, 215, 176),
    "two_stream": ("dagnn-net", 359, 217, 364),
}


@cache
def model(key: str) -> MCNModel:
    return read_matconvnet(FILES[key])


def _error(call, *args) -> str:
    with pytest.raises(MatFormatError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


def _type_of(name: str) -> str:
    return next(t for prefix, t in SIMPLENN_TYPES.items() if name.startswith(prefix))


def assert_same_model(a: MCNModel, b: MCNModel) -> None:
    """Same network: names, types, wiring, blocks, bit-identical params, vars, meta, stats."""
    assert a.layout == b.layout
    assert len(a.layers) == len(b.layers)
    for x, y in zip(a.layers, b.layers, strict=True):
        assert (x.name, x.type, x.inputs, x.outputs, x.params) == \
               (y.name, y.type, y.inputs, y.outputs, y.params)
        assert_same(x.block, y.block, f"{x.name}.block")
    assert list(a.params) == list(b.params)
    for name, p in a.params.items():
        q = b.params[name]
        assert (p.name, p.learningRate, p.weightDecay) == (q.name, q.learningRate, q.weightDecay)
        assert_same(p.value, q.value, name)
    assert a.vars == b.vars
    assert_same(a.meta, b.meta, "meta")
    assert a.stats_summary == b.stats_summary


# --------------------------------------------------------------------------------------------
# Every fixture, every layout
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", FILES)
def test_fixture_counts_and_layout(key: str) -> None:
    m = model(key)
    layout, n_layers, n_params, n_vars = EXPECTED[key]
    assert (m.layout, len(m.layers), len(m.params), len(m.vars)) == \
           (layout, n_layers, n_params, n_vars)
    assert m.mat_version == "5" and m.source_path == str(FILES[key])
    assert len({la.name for la in m.layers}) == len(m.layers)
    used = {p for la in m.layers for p in la.params}
    assert used == set(m.params)
    assert {v for la in m.layers for v in la.inputs + la.outputs} == set(m.vars)
    for la in m.layers:
        if la.type == "dagnn.Conv":
            w = m.params[la.params[0]].value
            assert w.ndim == 4 and list(w.shape) == la.block["size"], la.name
            assert la.block["hasBias"] == (len(la.params) == 2)
            if la.block["hasBias"]:
                assert m.params[la.params[1]].value.shape == (w.shape[3], 1)
        if la.type == "dagnn.BatchNorm":
            mult, bias, moments = (m.params[p].value for p in la.params)
            c = mult.shape[0]
            assert mult.shape == bias.shape == (c, 1) and moments.shape == (c, 2), la.name
            assert np.all(moments[:, 1] > 0)  # sigma = sqrt(var + eps)


@pytest.mark.parametrize("key", ["caffenet", "caffenet_legacy", "vgg16"])
def test_simplenn_as_dagnn(key: str) -> None:
    m = model(key)
    names = [la.name for la in m.layers]
    if key.startswith("caffenet"):
        assert names == CAFFENET_LAYERS
    assert [la.type for la in m.layers] == [_type_of(n) for n in names]
    assert m.vars == ["input"] + names
    previous = "input"
    for la in m.layers:  # a chain whose vars are named after the layers
        assert (la.inputs, la.outputs) == ([previous], [la.name])
        previous = la.name
        if la.type == "dagnn.Conv":
            assert la.params == [la.name + "f", la.name + "b"]
    pool = m.layer("pool1").block
    assert pool["pad"] == [0, 1, 0, 1] and pool["method"] == "max"
    assert pool["stride"] == [2, 2]
    if key == "vgg16":
        assert pool["poolSize"] == [2, 2]
        assert m.layer("drop6").block == {"rate": 0.5}
        assert m.meta["normalization"]["averageImage"].shape == (1, 1, 3)
        np.testing.assert_allclose(m.meta["normalization"]["averageImage"].ravel(),
                                   [123.68, 116.779, 103.939])
    else:
        assert pool["poolSize"] == [3, 3]
        assert m.layer("norm1").block == {"param": [5.0, 1.0, 2e-05, 0.75]}
        assert m.meta["normalization"]["averageImage"].shape == (227, 227, 3)
        assert m.meta["normalization"]["averageImage"].dtype == np.float32
        assert m.meta["normalization"]["keepAspect"] is False
        assert m.meta["normalization"]["interpolation"] == "bicubic"
        assert len(m.meta["classes"]["name"]) == 1000
    first = m.layers[0].block
    assert first["stride"] == ([1, 1] if key == "vgg16" else [4, 4]) and first["dilate"] == [1, 1]


def test_caffenet_grouped_convolutions() -> None:
    m = model("caffenet")
    depth = {la.name: m.params[la.params[0]].value.shape for la in m.layers if la.params}
    # filter depth = input channels / groups (2 groups for conv2, conv4, conv5)
    assert depth["conv2"] == (5, 5, 6, 32) and depth["conv1"][3] == 12
    assert depth["conv4"] == (3, 3, 24, 48) and depth["conv3"][3] == 48
    assert depth["conv5"] == (3, 3, 24, 32) and depth["conv4"][3] == 48
    assert depth["fc6"] == (6, 6, 32, 256)


def test_legacy_simplenn_equals_tidy() -> None:
    tidy, legacy = model("caffenet"), model("caffenet_legacy")
    assert legacy.layout == "simplenn-legacy" and tidy.layout == "simplenn"
    assert_same(legacy.layers, tidy.layers, "layers")  # 'normalize' -> dagnn.LRN too
    assert list(legacy.params) == list(tidy.params)
    for name, p in tidy.params.items():
        assert_same(legacy.params[name].value, p.value, name)  # 1xK biases -> Kx1
    a, b = legacy.meta["normalization"], tidy.meta["normalization"]
    assert_same(a["averageImage"], b["averageImage"])
    assert legacy.meta["classes"] == tidy.meta["classes"]


def test_resnet50_dagnn() -> None:
    m = model("resnet50")
    names = [la.name for la in m.layers]
    assert names[:4] == ["conv1", "bn_conv1", "conv1_relu", "pool1"]
    assert names[-3:] == ["pool5", "fc1000", "prob"]
    counts = Counter(la.type for la in m.layers)
    assert counts == {"dagnn.Conv": 54, "dagnn.BatchNorm": 53, "dagnn.ReLU": 49,
                      "dagnn.Sum": 16, "dagnn.Pooling": 2, "dagnn.SoftMax": 1}
    assert m.vars[:4] == ["data", "conv1", "conv1x", "conv1xxx"]
    assert m.layer("res2a").inputs == ["res2a_branch1x", "res2a_branch2cx"]
    assert m.layer("res2a").block == {}
    bn = m.layer("bn_conv1")
    assert bn.params == ["bn_conv1_mult", "bn_conv1_bias", "bn_conv1_moments"]
    assert bn.block["epsilon"] == 1e-5 and bn.block["numChannels"] is None
    assert m.layer("pool1").block["pad"] == [0, 1, 0, 1]
    assert m.layer("pool5").block["method"] == "avg"
    assert m.layer("pool5").block["poolSize"] == [7, 7]
    assert m.layer("conv1").block["opts"] == ["cuDNN"]
    biased = sorted(n for n in m.params if n.endswith("_bias") and not n.startswith("bn"))
    assert biased == ["conv1_bias", "fc1000_bias"]
    assert m.params["bn_conv1_moments"].learningRate == pytest.approx(0.1)
    assert m.meta["normalization"]["averageImage"].shape == (224, 224, 3)
    assert m.meta["inputs"] == [{"name": "data", "size": [224, 224, 3, 10]}]


def test_import_caffe_py_layout_equals_tidy() -> None:
    tidy, imported = model("resnet50"), model("resnet50_import")
    assert list(imported.params) == list(tidy.params)
    for name, p in tidy.params.items():
        assert_same(imported.params[name].value, p.value, name)
        assert imported.params[name].learningRate == 1.0  # absent -> DagNN's default
    assert imported.vars == tidy.vars  # derived from the layers, in DagNN's order
    for a, b in zip(imported.layers, tidy.layers, strict=True):
        assert (a.name, a.type, a.inputs, a.outputs, a.params) == \
               (b.name, b.type, b.inputs, b.outputs, b.params)
        for key, value in a.block.items():  # the importer writes a subset of the fields
            assert_same(value, b.block[key], f"{a.name}.{key}")
    assert imported.layer("res2a").block == {}  # a 0x0 double in the file
    assert imported.meta["normalization"]["keepAspect"] is True  # uint8 1 in the file


def test_two_stream_checkpoint() -> None:
    m = model("two_stream")
    by_name = {la.name: la for la in m.layers}
    twins = [n for n in by_name if n.endswith("_2")]
    assert len(twins) == 177
    for name in twins:  # stream 2 = renamed layers/vars, SAME params
        a, b = by_name[name[:-2]], by_name[name]
        assert a.type == b.type and a.params == b.params and a.block == b.block
    assert by_name["fc751_2"].params == ["fc751f", "fc751b"]
    assert m.params["fc751f"].value.shape == (1, 1, 256, 751)
    assert m.params["fc9f"].value.shape == (1, 1, 256, 2)
    sq = by_name["Square"]
    assert (sq.type, sq.inputs, sq.outputs) == ("dagnn.Square", ["pool5", "pool5_2"], ["ODist"])
    assert by_name["dropout"].block == {"rate": 0.9, "frozen": False}
    losses = {n: la.block["loss"] for n, la in by_name.items() if la.type == "dagnn.Loss"}
    assert losses == {"softmaxloss": "softmaxlog", "top1err": "classerror",
                      "softmaxloss_2": "softmaxlog", "top1err_2": "classerror",
                      "softmaxloss_D": "softmaxlog", "top1err_compare": "classerror"}
    assert by_name["softmaxloss_D"].inputs == ["Dist_prediction", "label_f"]
    avg = m.meta["normalization"]["averageImage"]
    assert avg.shape == (1, 1, 3)
    np.testing.assert_allclose(avg.ravel(), [105.6920, 99.1345, 97.9152])
    assert [e["objective"] for e in m.stats_summary["train"]] == [6.2, 3.1]
    assert [e["top1err"] for e in m.stats_summary["val"]] == [0.65, 0.35]
    assert m.stats_summary["train"][1]["top1err_cmopare"] == 0.155


# --------------------------------------------------------------------------------------------
# Values are the loaded arrays, not copies
# --------------------------------------------------------------------------------------------


def test_params_are_views_of_the_loaded_arrays() -> None:
    variables = load_mat(FILES["caffenet_legacy"])
    m = build_model(variables)
    conv1 = variables["layers"].tolist_matlab()[0].scalar()
    assert np.shares_memory(m.params["conv1f"].value, conv1["filters"])
    assert np.shares_memory(m.params["conv1b"].value, conv1["biases"])  # reshaped 1xK view
    assert conv1["biases"].shape == (1, 12) and m.params["conv1b"].value.shape == (12, 1)
    net = load_mat(FILES["two_stream"], ["net"])
    m = build_model(net)
    raw = net["net"].scalar()["params"][0]["value"]
    assert m.params["conv1_filter"].value is raw


def test_repeated_param_name_is_stored_once() -> None:
    net = load_mat(FILES["resnet50_import"])
    params = net["params"]
    elements = list(params)
    extra = {"name": "conv1_bias", "value": np.full((8, 1), 7, np.float32)}
    net["params"] = MatStruct(params.fields, (1, len(elements) + 1), elements + [extra])
    m = build_model(net)
    assert len(m.params) == 215 and list(m.params).count("conv1_bias") == 1
    assert m.params["conv1_bias"].value is extra["value"]  # the last entry wins, as loadobj


# --------------------------------------------------------------------------------------------
# v7.3 copies of every fixture read identically
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", FILES)
def test_v73_copy_reads_the_same(key: str, tmp_path: Path) -> None:
    path = tmp_path / f"{key}_v73.mat"
    save_v73(path, load_mat(FILES[key]))
    m73 = read_matconvnet(path)
    assert m73.mat_version == "7.3" and m73.source_path == str(path)
    assert_same_model(m73, model(key))


# --------------------------------------------------------------------------------------------
# SimpleNN corner cases, synthetic
# --------------------------------------------------------------------------------------------


def _layer(**fields) -> MatStruct:
    return MatStruct(list(fields), (1, 1), [fields])


def test_simplenn_under_net_with_bnorm_loss_and_singleton_filters(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    f = rng.standard_normal((3, 3, 4)).astype(np.float32)  # Cout = 1: MATLAB drops the dim
    layers = MatCell((1, 5), [
        _layer(name="c", type="conv", weights=MatCell((1, 2), [f, np.ones((1, 1), np.float32)]),
               pad=np.array([[1.0]]), stride=np.array([[1.0]]),
               learningRate=np.array([[1.0, 2.0]]), weightDecay=np.array([[1.0, 0.0]])),
        _layer(name="bn", type="bnorm", weights=MatCell((1, 2), [np.ones((1, 1), np.float32),
                                                                 np.zeros((1, 1), np.float32)])),
        _layer(name="", type="custom", foo=np.array([[3.0]])),
        _layer(name="loss", type="softmaxloss"),
        _layer(name="loss2", type="softmaxloss"),
    ])
    path = tmp_path / "net-epoch-3.mat"
    save_v73(path, {"net": _layer(layers=layers, meta=_layer(
        normalization=_layer(averageImage=np.array([[1.0, 2.0, 3.0]]))))})
    m = read_matconvnet(path)
    assert m.layout == "simplenn-net"
    assert [la.name for la in m.layers] == ["c", "bn", "layer3", "loss", "loss2"]
    conv = m.layer("c")
    assert m.params["cf"].value.shape == (3, 3, 4, 1) and conv.block["size"] == [3, 3, 4, 1]
    assert conv.block["pad"] == [1, 1, 1, 1] and conv.block["stride"] == [1, 1]
    assert (m.params["cb"].learningRate, m.params["cb"].weightDecay) == (2.0, 0.0)
    assert m.layer("bn").params == ["bnm", "bnb", "bnx"]
    assert m.params["bnx"].value.shape == (1, 2)  # vl_simplenn_tidy's zero moments
    assert m.layer("layer3").type == "simplenn.custom" and m.layer("layer3").block == {"foo": 3.0}
    assert m.layer("loss").inputs == ["layer3", "label"]
    assert m.layer("loss2").inputs == ["loss", "label1"]
    assert m.meta["normalization"]["averageImage"].shape == (1, 1, 3)
    assert m.vars == ["input", "c", "bn", "layer3", "label", "loss", "label1", "loss2"]


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_layer_referencing_a_missing_param(tmp_path: Path) -> None:
    variables = load_mat(FILES["resnet50"], ["layers", "params"])
    layers = list(variables["layers"])
    layers[3] = dict(layers[3], params=MatCell((1, 1), ["pool1_filter"]))
    variables["layers"] = MatStruct(variables["layers"].fields, (1, len(layers)), layers)
    assert "'pool1_filter'" in _error(build_model, variables)
    path = tmp_path / "missing_param.mat"
    save_v73(path, variables)
    message = _error(read_matconvnet, path)
    assert str(path) in message and "'pool1'" in message and "'pool1_filter'" in message


def test_file_without_a_network(tmp_path: Path) -> None:
    path = tmp_path / "features.mat"
    save_v73(path, {"features": np.ones((4, 2), np.float32), "names": MatCell((1, 1), ["a"])})
    message = _error(read_matconvnet, path)
    assert str(path) in message and "features, names" in message
    empty = tmp_path / "header_only.mat"
    empty.write_bytes(FILES["vgg16"].read_bytes()[:128])
    assert "variables found: none" in _error(read_matconvnet, empty)


def test_matlab_object_instead_of_a_struct(tmp_path: Path) -> None:
    v73 = tmp_path / "dagnn_object.mat"
    write_object_standin(v73, "net", "dagnn.DagNN")
    message = _error(read_matconvnet, v73)
    assert str(v73) in message and "dagnn.DagNN" in message and "net.saveobj()" in message

    def tag(kind: int, payload: bytes) -> bytes:
        return struct.pack("<II", kind, len(payload)) + payload + bytes(-len(payload) % 8)

    inner = (tag(6, struct.pack("<II", 13, 0)) + tag(5, struct.pack("<2i", 6, 1))
             + tag(1, b"") + tag(6, struct.pack("<6I", 0xDD000000, 2, 1, 1, 1, 1)))
    body = (tag(6, struct.pack("<II", 17, 0)) + tag(1, b"net") + tag(1, b"MCOS")
            + tag(1, b"dagnn.DagNN") + tag(14, inner))
    v5 = tmp_path / "dagnn_object_v7.mat"
    v5.write_bytes(b"MATLAB 5.0 MAT-file".ljust(116, b" ") + bytes(8) + b"\x00\x01IM"
                   + tag(14, body))
    message = _error(read_matconvnet, v5)
    assert str(v5) in message and "dagnn.DagNN" in message and "saveobj" in message


def test_truncated_and_garbage_files(tmp_path: Path) -> None:
    data = FILES["two_stream"].read_bytes()
    for cut in (1000, len(data) // 3, len(data) - 8):
        path = tmp_path / f"net-epoch-1_cut{cut}.mat"
        path.write_bytes(data[:cut])
        assert str(path) in _error(read_matconvnet, path)
    full = tmp_path / "v73.mat"
    save_v73(full, load_mat(FILES["vgg16"]))
    cut73 = tmp_path / "v73_cut.mat"
    cut73.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert str(cut73) in _error(read_matconvnet, cut73)
    noise = tmp_path / "noise.mat"
    noise.write_bytes(np.random.default_rng(2).integers(1, 255, 1000, np.uint8).tobytes())
    assert str(noise) in _error(read_matconvnet, noise)


def test_malformed_layers(tmp_path: Path) -> None:
    bad_block = load_mat(FILES["resnet50_import"])
    layers = list(bad_block["layers"])
    layers[0] = dict(layers[0], block=MatCell((1, 1), ["x"]))
    bad_block["layers"] = MatStruct(bad_block["layers"].fields, (1, len(layers)), layers)
    message = _error(build_model, bad_block, "bad.mat")
    assert message.startswith("bad.mat: ") and "'conv1'" in message and "block" in message
    no_filters = {"layers": MatCell((1, 1), [_layer(name="c", type="conv")])}
    assert "'c'" in _error(build_model, no_filters, "nofilters.mat")
    not_a_net = {"layers": np.ones((2, 2))}
    assert "layers" in _error(build_model, not_a_net, "numbers.mat")


def test_network_under_another_variable_name(tmp_path: Path) -> None:
    conv = _layer(name="c", type="conv",
                  weights=MatCell((1, 2), [np.ones((1, 1, 2, 3), np.float32), np.zeros((0, 0))]))
    path = tmp_path / "saved.mat"
    save_v73(path, {"net": np.ones((1, 1)), "mynet": _layer(layers=MatCell((1, 1), [conv]))})
    m = read_matconvnet(path)
    assert m.layout == "simplenn-net" and m.layer("c").params == ["cf"]
    assert m.layer("c").block["hasBias"] is False
    two = tmp_path / "two.mat"
    save_v73(two, {"a": _layer(layers=MatCell((1, 1), [conv])),
                   "b": _layer(layers=MatCell((1, 1), [conv]))})
    message = _error(read_matconvnet, two)
    assert str(two) in message and "a, b" in message
