"""Caffe conversion is never silently wrong (issue 21): unknown fields are errors unless
``--ignore-unknown-fields`` (which records what it ignored), the forks' pooling
``ceil_mode``/``round_mode`` have their semantics, the converter refuses what loading
refuses, shapes use the batch the prototxt declares, and duplicate layer names are refused
only where the caffemodel's weights would be ambiguous.

Every net is a few layers written here; expected values are computed in float64 numpy from
Caffe's definitions (pooling output size, reshape, inner product)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import porting
from porting.converters.caffe import main as convert_caffe
from porting.converters.caffe import proto as cp

from conftest import refused, rel_err


def _blob(a: np.ndarray):
    return cp.BlobProto(shape=cp.BlobShape(dim=list(a.shape)),
                        data=a.astype(np.float32).ravel().tolist())


def _write(tmp: Path, text: str, weights: dict[str, list[np.ndarray]] | None = None
           ) -> tuple[Path, Path]:
    proto, model = tmp / "net.prototxt", tmp / "net.caffemodel"
    proto.write_text(text)
    net = cp.NetParameter(name="t")
    weights = weights or {}
    for name in dict.fromkeys(re.findall(r'layer \{ name: "([^"]+)"', text)):  # as Caffe saves
        net.layer.add(name=name, blobs=[_blob(b) for b in weights.get(name, [])])
    model.write_bytes(net.SerializeToString())
    return proto, model


def _convert(capsys, proto: Path, model: Path, *extra: str) -> tuple[int, str, Path]:
    out = proto.parent / "out.pth"
    capsys.readouterr()
    rc = convert_caffe([str(proto), str(model), "-o", str(out), "-q", "--arch", "none",
                        *extra])
    return rc, capsys.readouterr().err, out


def _run(path: Path, outputs: list[str], **feeds: np.ndarray) -> dict[str, np.ndarray]:
    model = porting.load(path)
    with torch.no_grad():
        got = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}, outputs=outputs)
    return {k: v.double().numpy() for k, v in got.items()}


HEAD = 'name: "t"\ninput: "data"\ninput_shape { dim: %d dim: %d dim: %d dim: %d }\n'


def _pool_net(pool_fields: str, size: int = 7) -> str:
    return HEAD % (1, 2, size, size) + (
        'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"\n'
        f'  pooling_param {{ pool: MAX kernel_size: 3 stride: 2 {pool_fields} }} }}\n')


# ------------------------------------------------------------------------ unknown fields


def test_unknown_field_in_a_layer_parameter_is_an_error(tmp_path, capsys) -> None:
    proto, model = _write(tmp_path, _pool_net("pad_mode: SAME"))
    line = refused(_convert(capsys, proto, model), "net.prototxt", "'pool'", "pad_mode")
    assert "--ignore-unknown-fields" in line


def test_unknown_field_in_a_nested_message_names_its_layer(tmp_path, capsys) -> None:
    text = HEAD % (1, 2, 5, 5) + (
        'layer { name: "c" type: "Convolution" bottom: "data" top: "c"\n'
        '  convolution_param { num_output: 2 kernel_size: 1\n'
        '    weight_filler { type: "msra" variance_norm_mode: 7 } } }\n')
    w = np.ones((2, 2, 1, 1))
    proto, model = _write(tmp_path, text, {"c": [w, np.zeros(2)]})
    refused(_convert(capsys, proto, model), "net.prototxt", "'c'", "variance_norm_mode")


def test_ignore_unknown_fields_converts_says_so_and_records_it(tmp_path, capsys) -> None:
    proto, model = _write(tmp_path, _pool_net("pad_mode: SAME"))
    rc, err, out = _convert(capsys, proto, model, "--ignore-unknown-fields")
    assert rc == 0, err
    assert "pad_mode" in err and "'pool'" in err
    ckpt = porting.load_checkpoint(out)
    ignored = ckpt["meta"]["ignored_fields"]
    assert any("pad_mode" in f and "pool" in f for f in ignored), ignored


def test_a_known_net_has_no_ignored_fields_recorded(tmp_path, capsys) -> None:
    proto, model = _write(tmp_path, _pool_net(""))
    rc, err, out = _convert(capsys, proto, model)
    assert rc == 0, err
    assert not porting.load_checkpoint(out)["meta"].get("ignored_fields")


def test_unknown_layer_type_is_an_error_naming_layer_and_type(tmp_path, capsys) -> None:
    text = _pool_net("") + 'layer { name: "warp" type: "SpatialWarp" bottom: "pool" ' \
                           'top: "warp" }\n'
    proto, model = _write(tmp_path, text)
    refused(_convert(capsys, proto, model), "net.prototxt", "'warp'", "SpatialWarp")
    refused(_convert(capsys, proto, model, "--ignore-unknown-fields"), "'warp'",
            "SpatialWarp")


def test_data_layer_scale_is_not_dropped(tmp_path, capsys) -> None:
    # A Data layer is a graph input; its transform_param.scale multiplies the pixels (after
    # the mean) in Caffe, so the preprocessing spec must divide by 1/scale, not ignore it.
    text = ('name: "t"\nlayer { name: "data" type: "Data" top: "data" top: "label"\n'
            '  transform_param { scale: 0.00390625 crop_size: 227 }\n'
            '  data_param { source: "x" batch_size: 4 backend: LMDB } }\n'
            'layer { name: "relu" type: "ReLU" bottom: "data" top: "r" }\n')
    proto, model = _write(tmp_path, text)
    rc, err, out = _convert(capsys, proto, model)
    if rc == 0:
        spec = porting.load_checkpoint(out)["preprocess"]
        assert spec["std"] is not None and np.allclose(spec["std"], 256.0), spec
    else:
        refused((rc, err, out), "net.prototxt", "'data'", "scale")


def test_data_layer_fields_the_preprocessing_cannot_carry(tmp_path, capsys) -> None:
    # mirror: Caffe's DataTransformer flips half the images at random, at test time too.
    text = ('name: "t"\nlayer { name: "data" type: "ImageData" top: "data" top: "label"\n'
            '  transform_param { mirror: true crop_size: 227 }\n'
            '  image_data_param { source: "x" batch_size: 4 } }\n'
            'layer { name: "relu" type: "ReLU" bottom: "data" top: "r" }\n')
    proto, model = _write(tmp_path, text)
    refused(_convert(capsys, proto, model), "net.prototxt", "'data'", "mirror")
    rc, err, out = _convert(capsys, proto, model, "--ignore-unknown-fields")
    assert rc == 0, err
    assert "mirror" in err
    assert any("mirror" in f for f in porting.load_checkpoint(out)["meta"]["ignored_fields"])


# ------------------------------------------------------------------ fork pooling fields


def _ref_max_pool(x: np.ndarray, k: int, s: int, ceil: bool) -> np.ndarray:
    """Caffe MAX pooling (no pad) in float64: CEIL or FLOOR output, windows clipped."""
    n, c, h, w = x.shape
    oh = (-(-(h - k) // s) if ceil else (h - k) // s) + 1
    ow = (-(-(w - k) // s) if ceil else (w - k) // s) + 1
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = x[:, :, i * s:min(i * s + k, h), j * s:min(j * s + k, w)].max(
                axis=(2, 3))
    return out


@pytest.mark.parametrize("fields, ceil", [("", True), ("ceil_mode: true", True),
                                          ("ceil_mode: false", False),
                                          ("round_mode: CEIL", True),
                                          ("round_mode: FLOOR", False)])
def test_pooling_round_modes(tmp_path, capsys, fields: str, ceil: bool) -> None:
    # 8 wide, kernel 3, stride 2: CEIL gives 4 outputs (the last window clipped), FLOOR 3.
    proto, model = _write(tmp_path, _pool_net(fields, size=8))
    rc, err, out = _convert(capsys, proto, model)
    assert rc == 0, err
    assert "unknown field" not in err
    x = np.random.default_rng(0).normal(size=(1, 2, 8, 8)).astype(np.float32)
    got = _run(out, ["pool"], data=x)["pool"]
    ref = _ref_max_pool(x.astype(np.float64), 3, 2, ceil)
    assert got.shape == ref.shape
    assert rel_err(got, ref) == 0.0


def test_ceil_mode_and_round_mode_that_disagree_are_refused(tmp_path, capsys) -> None:
    proto, model = _write(tmp_path, _pool_net("ceil_mode: false round_mode: CEIL"))
    refused(_convert(capsys, proto, model), "net.prototxt", "'pool'", "ceil_mode",
            "round_mode")


def test_cudnn_workspace_field_of_a_fork_is_accepted(tmp_path, capsys) -> None:
    # Cysu's and yjxiong's forks: NetParameter.richness sizes cuDNN's workspace, no numbers.
    proto, model = _write(tmp_path, "richness: 1000\n" + _pool_net(""))
    rc, err, _ = _convert(capsys, proto, model)
    assert rc == 0, err
    assert "richness" not in err


# ------------------------------------------------------------------------- one set of limits


@pytest.mark.parametrize("size", [65535, 4097])
def test_conversion_refuses_what_loading_refuses(tmp_path, capsys, size: int) -> None:
    text = _pool_net("") + ('layer { name: "norm" type: "LRN" bottom: "pool" top: "norm"\n'
                            f'  lrn_param {{ local_size: {size} }} }}\n')
    proto, model = _write(tmp_path, text)
    refused(_convert(capsys, proto, model), "net.prototxt", "'norm'", "local_size")


def test_an_lrn_within_the_limits_converts_and_loads(tmp_path, capsys) -> None:
    text = _pool_net("") + ('layer { name: "norm" type: "LRN" bottom: "pool" top: "norm"\n'
                            '  lrn_param { local_size: 4095 } }\n')
    proto, model = _write(tmp_path, text)
    rc, err, out = _convert(capsys, proto, model)
    assert rc == 0, err
    porting.load(out)


# ------------------------------------------------------------------- the declared batch


def _batch_net(n: int) -> tuple[str, dict[str, list[np.ndarray]]]:
    """Input n x 2 x 3 x 3 -> Reshape naming the batch -> InnerProduct -> Slice along the
    batch -> Concat back (axis 0) -> Flatten."""
    text = HEAD % (n, 2, 3, 3) + (
        'layer { name: "r" type: "Reshape" bottom: "data" top: "r"\n'
        f'  reshape_param {{ shape {{ dim: {n} dim: 2 dim: 9 }} }} }}\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "r" top: "ip"\n'
        '  inner_product_param { num_output: 4 axis: 2 } }\n'
        'layer { name: "s" type: "Slice" bottom: "ip" top: "s0" top: "s1"\n'
        '  slice_param { axis: 0 slice_point: 1 } }\n'
        'layer { name: "c" type: "Concat" bottom: "s1" bottom: "s0" top: "c"\n'
        '  concat_param { axis: 0 } }\n'
        'layer { name: "f" type: "Flatten" bottom: "c" top: "f" }\n')
    rng = np.random.default_rng(1)
    return text, {"ip": [rng.normal(size=(4, 9)), rng.normal(size=4)]}


@pytest.mark.parametrize("n", [2, 3])
def test_shapes_take_the_declared_batch(tmp_path, capsys, n: int) -> None:
    text, weights = _batch_net(n)
    proto, model = _write(tmp_path, text, weights)
    rc, err, out = _convert(capsys, proto, model)
    assert rc == 0, err
    x = np.random.default_rng(2).normal(size=(n, 2, 3, 3)).astype(np.float32)
    got = _run(out, ["f"], data=x)["f"]
    w, b = (a.astype(np.float32).astype(np.float64) for a in weights["ip"])
    ip = x.astype(np.float64).reshape(n, 2, 9) @ w.T + b
    ref = np.concatenate([ip[1:], ip[:1]], axis=0).reshape(n, -1)
    assert got.shape == ref.shape
    assert rel_err(got, ref) < 1e-5


def test_a_reshape_that_does_not_fit_the_declared_batch_is_refused(tmp_path, capsys) -> None:
    text, weights = _batch_net(2)
    text = text.replace("shape { dim: 2 dim: 2 dim: 9 }", "shape { dim: 3 dim: 2 dim: 9 }")
    proto, model = _write(tmp_path, text, weights)
    refused(_convert(capsys, proto, model), "net.prototxt", "'r'")


# ------------------------------------------------------------------ duplicate layer names


def test_duplicate_names_of_layers_without_weights_convert(tmp_path, capsys) -> None:
    text = HEAD % (1, 2, 4, 4) + (
        'layer { name: "c" type: "Convolution" bottom: "data" top: "c"\n'
        '  convolution_param { num_output: 2 kernel_size: 1 } }\n'
        'layer { name: "relu" type: "ReLU" bottom: "c" top: "c" }\n'
        'layer { name: "c2" type: "Convolution" bottom: "c" top: "c2"\n'
        '  convolution_param { num_output: 2 kernel_size: 1 } }\n'
        'layer { name: "relu" type: "ReLU" bottom: "c2" top: "c2" }\n')
    rng = np.random.default_rng(3)
    w1, w2 = rng.normal(size=(2, 2, 1, 1)), rng.normal(size=(2, 2, 1, 1))
    proto, model = _write(tmp_path, text, {"c": [w1, np.zeros(2)], "c2": [w2, np.zeros(2)]})
    rc, err, out = _convert(capsys, proto, model)
    assert rc == 0, err
    x = rng.normal(size=(1, 2, 4, 4)).astype(np.float32)
    got = _run(out, ["c2"], data=x)["c2"]
    f32 = [w.astype(np.float32).astype(np.float64)[:, :, 0, 0] for w in (w1, w2)]
    ref = np.maximum(np.einsum("oc,nchw->nohw", f32[0], x.astype(np.float64)), 0)
    ref = np.maximum(np.einsum("oc,nchw->nohw", f32[1], ref), 0)
    assert rel_err(got, ref) < 1e-5


def test_duplicate_names_of_layers_with_weights_are_refused(tmp_path, capsys) -> None:
    text = HEAD % (1, 2, 4, 4) + (
        'layer { name: "c" type: "Convolution" bottom: "data" top: "c1"\n'
        '  convolution_param { num_output: 2 kernel_size: 1 } }\n'
        'layer { name: "c" type: "Convolution" bottom: "c1" top: "c2"\n'
        '  convolution_param { num_output: 2 kernel_size: 1 } }\n')
    w = np.ones((2, 2, 1, 1))
    proto, model = _write(tmp_path, text, {"c": [w, np.zeros(2)]})
    line = refused(_convert(capsys, proto, model), "net.prototxt", "'c'")
    assert "weights" in line
