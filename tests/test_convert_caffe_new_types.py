"""Issue 21's Caffe types end to end: a tiny net per type (batch 2, odd sizes) written as a
prototxt plus a caffemodel through ``porting.converters.caffe.proto``, converted by
``convert-caffe``, loaded, and compared blob by blob with an independent runtime: OpenCV dnn
where OpenCV implements the type, else the source's formula in float64 numpy
(``tests/caffe_refs.py``) applied to the same bottoms.

The rule per blob: the converted graph run in float64 must match the float64 formula to
1e-10, or OpenCV's float32 blob to the issue's 1e-4; its float32 run must be within
``assert_fp32_close`` of the float64 reference (OpenCV's own float32 error as the noise
where OpenCV is the oracle). Index-valued blobs (masks, ArgMax, Threshold) must be equal.
"""

from __future__ import annotations

from pathlib import Path

import caffe_refs as ref
import numpy as np
import pytest
import torch
from caffe_oracle import caffemodel_bytes, input_lines, run_opencv

import porting
from porting.converters.caffe import main as convert_main

from conftest import assert_fp32_close, refused, rel_err

R = np.random.default_rng(21)


def arr(*shape: int, positive: bool = False, scale: float = 1.0) -> np.ndarray:
    v = R.standard_normal(shape) * scale
    v = np.abs(v) + 0.05 if positive else v
    return v.astype(np.float32).astype(np.float64)


def layer(name: str, type_: str, bottoms: list[str], extra: str = "", tops=None) -> str:
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in (tops or [name]))
    return f'layer {{ name: "{name}" type: "{type_}" {b} {t} {extra} }}\n'


X = arr(2, 4, 5, 7)
W = {"prelu": [arr(4, positive=True)], "prelu_s": [arr(1, positive=True)],
     "deconv": [arr(4, 3, 3, 3), arr(6)], "dw": [arr(4, 1, 3, 3), arr(4)],
     "norm": [arr(4, positive=True)], "norm_s": [arr(1, positive=True)],
     "bn": [arr(1, 4), arr(1, 4), arr(1, 4), arr(1, 4, positive=True)],
     "bn2": [arr(1, 4, 1, 1), arr(1, 4, 1, 1)],
     "fc": [arr(3, 140), arr(3)], "fcbn": [arr(1, 3), arr(1, 3), arr(1, 3),
                                            arr(1, 3, positive=True)],
     "emb": [arr(6, 3), arr(3)], "ip": [arr(35, 5), arr(5)], "ip2": [arr(5, 35), arr(5)],
     "scale": [arr(4, 5)]}

# name -> (layers, inputs, {blob: "opencv" | float64 formula of the inputs})
CASES = {
    "PReLU": (layer("prelu", "PReLU", ["x"]) + layer("prelu_s", "PReLU", ["x"],
              "prelu_param { channel_shared: true }"), {"x": X},
              {"prelu": "opencv", "prelu_s": "opencv"}),
    "activations": ("".join(layer(n, t, ["x"], p) for n, t, p in (
        ("elu", "ELU", "elu_param { alpha: 0.75 }"), ("absval", "AbsVal", ""),
        ("bnll", "BNLL", ""), ("exp", "Exp", "exp_param { base: 2 scale: 0.5 shift: 0.25 }"),
        ("power", "Power", "power_param { power: 2 scale: 0.5 shift: 0.25 }"))),
        {"x": X}, dict.fromkeys(("elu", "absval", "bnll", "exp", "power"), "opencv")),
    "Log+Threshold": (layer("abs", "AbsVal", ["x"]) + layer(
        "log", "Log", ["abs"], "log_param { base: 10 scale: 2 shift: 0.5 }")
        + layer("thr", "Threshold", ["x"], "threshold_param { threshold: 0.25 }"), {"x": X},
        {"log": lambda x: ref.log_layer(np.abs(x), 10, 2, 0.5),
         "thr": lambda x: (x > 0.25) * 1.0}),
    "Deconvolution": (layer("deconv", "Deconvolution", ["x"], "convolution_param { "
                      "num_output: 6 group: 2 kernel_size: 3 stride: 2 pad: 1 }"),
                      {"x": X}, {"deconv": "opencv"}),
    "Deconvolution-dilated": (layer("deconv", "Deconvolution", ["x"], "convolution_param { "
                              "num_output: 6 group: 2 kernel_size: 3 stride: 2 dilation: 2 }"),
                              {"x": X}, {"deconv": lambda x: ref.deconv(
                                  x, W["deconv"][0], W["deconv"][1], (2, 2), (0, 0), (2, 2),
                                  2)}),
    "ConvolutionDepthwise+ShuffleChannel": (
        layer("dw", "ConvolutionDepthwise", ["x"], "convolution_param { num_output: 4 "
              "kernel_size: 3 stride: 2 pad: 1 }")
        + layer("shuffle", "ShuffleChannel", ["dw"], "shuffle_channel_param { group: 2 }"),
        {"x": X}, {"dw": "opencv", "shuffle": "opencv"}),
    "Crop": (layer("crop", "Crop", ["x", "like"], "crop_param { axis: 2 offset: 1 offset: 2 }"),
             {"x": X, "like": arr(2, 4, 3, 4)}, {"crop": "opencv"}),
    "MVN+Normalize+Permute": (
        layer("mvn", "MVN", ["x"], "mvn_param { across_channels: true eps: 1e-6 }")
        + layer("norm", "Normalize", ["x"], "norm_param { across_spatial: false "
                "channel_shared: false eps: 1e-6 }")
        + layer("norm_s", "Normalize", ["x"], "norm_param { across_spatial: true eps: 1e-6 }")
        + layer("perm", "Permute", ["x"], "permute_param { order: 0 order: 2 order: 3 "
                "order: 1 }"), {"x": X},
        {"mvn": "opencv", "norm": "opencv", "norm_s": "opencv", "perm": "opencv"}),
    "Interp": (layer("zoom", "Interp", ["x"], "interp_param { zoom_factor: 2 }")
               + layer("sized", "Interp", ["x"], "interp_param { height: 9 width: 4 }"),
               {"x": X}, {"zoom": "opencv", "sized": "opencv"}),
    "Interp-crop-shrink": (layer("shrink", "Interp", ["x"], "interp_param { shrink_factor: 2 "
                           "pad_beg: -1 pad_end: 0 }")
                           + layer("like", "Interp", ["x", "y"], ""),
                           {"x": X, "y": arr(2, 1, 8, 3)},
                           {"shrink": lambda x, y: ref.interp(x, 2, 3, -1, 0),
                            "like": lambda x, y: ref.interp(x, 8, 3)}),
    "Pooling-mask+Upsample": (
        layer("pool", "Pooling", ["x"], "pooling_param { pool: MAX kernel_size: 2 stride: 2 }",
              tops=["pool", "mask"])
        + layer("up", "Upsample", ["pool", "mask"], "upsample_param { scale: 2 pad_out_h: true "
                "pad_out_w: true }")
        + layer("near", "Upsample", ["x"], "upsample_param { scale: 3 }"), {"x": X},
        {"pool": "opencv", "mask": lambda x: ref.max_pool_mask(x, 2, 2, 0)[1],
         "up": lambda x: ref.unpool(*ref.max_pool_mask(x, 2, 2, 0), 5, 7),
         "near": lambda x: x.repeat(3, axis=2).repeat(3, axis=3)}),
    "Pooling-STOCHASTIC": (layer("sto", "Pooling", ["x"], "pooling_param { pool: STOCHASTIC "
                           "kernel_size: 3 stride: 2 }"), {"x": X},
                           {"sto": lambda x: ref.stochastic_test(x, 3, 2)}),
    "Reduction+ArgMax+Tile": (
        layer("red", "Reduction", ["x"], "reduction_param { operation: SUMSQ axis: 2 "
              "coeff: 0.5 }")
        + layer("top", "ArgMax", ["x"], "argmax_param { top_k: 2 out_max_val: true }")
        + layer("topc", "ArgMax", ["x"], "argmax_param { top_k: 3 axis: 1 }")
        + layer("tile", "Tile", ["x"], "tile_param { axis: 1 tiles: 3 }"), {"x": X},
        {"red": lambda x: ref.reduction(x, "SUMSQ", 2, 0.5),
         "top": lambda x: ref.argmax(x, 2, True, None),
         "topc": lambda x: ref.argmax(x, 3, False, 1), "tile": lambda x: ref.tile(x, 1, 3)}),
    "Embed": (layer("emb", "Embed", ["i"], "embed_param { num_output: 3 input_dim: 6 }"),
              {"i": np.array([[0.0, 5.0, 2.0], [4.0, 4.0, 1.0]])},
              {"emb": lambda i: W["emb"][0][i.astype(int)] + W["emb"][1]}),
    "Axpy+BN": (layer("pool", "Pooling", ["x"], "pooling_param { pool: AVE global_pooling: "
                      "true }")
                + layer("axpy", "Axpy", ["pool", "x", "y"])
                + layer("bn", "BN", ["x"], "bn_param { eps: 1e-4 }"),
                {"x": X, "y": arr(2, 4, 5, 7)},
                {"axpy": lambda x, y: x.mean((2, 3), keepdims=True) * x + y,
                 "bn": lambda x, y: (W["bn"][0].reshape(1, 4, 1, 1) * (
                     x - W["bn"][2].reshape(1, 4, 1, 1)) / np.sqrt(
                     W["bn"][3].reshape(1, 4, 1, 1) + 1e-4) + W["bn"][1].reshape(1, 4, 1, 1))}),
    "Scale+Bias-bottoms": (layer("sc", "Scale", ["x", "s"], "scale_param { axis: 1 }")
                           + layer("bi", "Bias", ["x", "b"], "bias_param { axis: 0 }"),
                           {"x": X, "s": arr(4, 5), "b": arr(2, 4)},
                           {"sc": lambda x, s, b: x * s[None, :, :, None],
                            "bi": lambda x, s, b: x + b[:, :, None, None]}),
    "BN-after-InnerProduct": (  # JSTL's fc7_bn: the fork's BN on an N x C blob
        layer("fc", "InnerProduct", ["x"], "inner_product_param { num_output: 3 }")
        + layer("fcbn", "BN", ["fc"], "bn_param { frozen: true }"), {"x": X},
        {"fcbn": lambda x: (W["fcbn"][0] * (x.reshape(2, 140) @ W["fc"][0].T + W["fc"][1]
                                             - W["fcbn"][2]) / np.sqrt(W["fcbn"][3] + 1e-5)
                            + W["fcbn"][1])}),
    "BN-segnet": (layer("bn2", "BN", ["x"], "bn_param { bn_mode: INFERENCE }"), {"x": X},
                  {"bn2": lambda x: W["bn2"][0] * x + W["bn2"][1]}),
    "BVLC-axes": (
        layer("prod", "Eltwise", ["x", "y"], "eltwise_param { operation: PROD }")
        + layer("max", "Eltwise", ["x", "y"], "eltwise_param { operation: MAX }")
        + layer("sum", "Eltwise", ["x", "y"], "eltwise_param { operation: SUM coeff: 0.5 "
                "coeff: -2 }")
        + layer("scale", "Scale", ["x"], "scale_param { axis: 1 num_axes: 2 }")
        + layer("reshape", "Reshape", ["x"], "reshape_param { shape { dim: -1 } axis: 2 }")
        + layer("flat", "Flatten", ["x"], "flatten_param { axis: 1 end_axis: 2 }")
        + layer("ip", "InnerProduct", ["x"], "inner_product_param { num_output: 5 axis: 2 "
                "transpose: true }")
        + layer("ip2", "InnerProduct", ["x"], "inner_product_param { num_output: 5 axis: 2 }")
        + layer("soft", "Softmax", ["x"], "softmax_param { axis: 2 }"),
        {"x": X, "y": arr(2, 4, 5, 7)},
        {**dict.fromkeys(("prod", "max", "sum", "scale", "reshape", "flat", "ip2", "soft"),
                         "opencv"),
         # OpenCV reads a transposed weight as untransposed: Caffe's y = x W, W of K x N
         "ip": lambda x, y: x.reshape(2, 4, 35) @ W["ip"][0] + W["ip"][1]}),
}
INDEX_BLOBS = {"mask", "top", "topc", "thr"}
OPENCV_STOPS = {"Pooling-mask+Upsample": 'layer { name: "up"'}  # OpenCV lacks Upsample


def _blobs(layers: str) -> dict[str, list[np.ndarray]]:
    """Every layer named in ``layers`` with its weights (``W`` by layer name; none for the
    others), as Caffe writes a caffemodel."""
    names = [line.split('"')[1] for line in layers.splitlines() if line.startswith("layer")]
    return {n: W.get(n, []) for n in names}


def _write(tmp: Path, layers: str, inputs: dict[str, np.ndarray]) -> tuple[Path, Path]:
    proto, model = tmp / "net.prototxt", tmp / "net.caffemodel"
    proto.write_text('name: "tiny"\n' + input_lines(inputs) + layers)
    model.write_bytes(caffemodel_bytes(_blobs(layers)))
    return proto, model


@pytest.mark.parametrize("name", sorted(CASES))
def test_new_type_converts_and_matches(name: str, tmp_path: Path) -> None:
    layers, inputs, checks = CASES[name]
    proto, model = _write(tmp_path, layers, inputs)
    out = tmp_path / "m.pth"
    assert convert_main([str(proto), str(model), "-o", str(out), "-q"]) == 0
    net = porting.load(out, canonical=False).eval()
    wanted = sorted(checks)
    with torch.no_grad():
        ours64 = net.double()(**{k: torch.from_numpy(v) for k, v in inputs.items()},
                              outputs=wanted)
        ours32 = net.float()(**{k: torch.from_numpy(v.astype(np.float32))
                                for k, v in inputs.items()}, outputs=wanted)
    cv_names = [b for b in wanted if checks[b] == "opencv"]
    # OpenCV runs the layers it implements (those before the first it lacks)
    cv_layers = layers.split(OPENCV_STOPS[name])[0] if name in OPENCV_STOPS else layers
    cv = dict(zip(cv_names, run_opencv(cv_layers, inputs, _blobs(cv_layers), cv_names),
                  strict=True)) if cv_names else {}
    for blob in wanted:
        y64, y32 = ours64[blob].numpy(), ours32[blob].numpy()
        if checks[blob] == "opencv":
            assert cv[blob].shape == y64.shape, (blob, cv[blob].shape, y64.shape)
            assert rel_err(cv[blob], y64) <= 1e-4, (blob, rel_err(cv[blob], y64))
            assert_fp32_close(y32, cv[blob], y64)
            continue
        expect = checks[blob](*inputs.values())
        assert y64.shape == expect.shape, (blob, y64.shape, expect.shape)
        if blob in INDEX_BLOBS:
            assert np.array_equal(y64, expect) and np.array_equal(y32, expect), blob
            continue
        assert rel_err(y64, expect) <= 1e-10, (blob, rel_err(y64, expect))
        assert_fp32_close(y32, expect.astype(np.float32), expect)


REFUSED = {  # name -> (layers, inputs, extra arguments, words the one-line error names)
    "segnet-bn-learn": (layer("bn2", "BN", ["x"]), {"x": X}, [], ["bn2", "bn_mode LEARN"]),
    "stochastic-train": (layer("sto", "Pooling", ["x"], "pooling_param { pool: STOCHASTIC "
                         "kernel_size: 3 }"), {"x": X}, ["--phase", "TRAIN"],
                         ["sto", "STOCHASTIC", "TRAIN"]),
    "mask-of-ave": (layer("pool", "Pooling", ["x"], "pooling_param { pool: AVE kernel_size: 2 }",
                          tops=["pool", "mask"]), {"x": X}, [], ["pool", "needs"]),
    "depthwise-outputs": (layer("dw", "ConvolutionDepthwise", ["x"], "convolution_param { "
                          "num_output: 8 kernel_size: 3 }"), {"x": X}, [],
                          ["dw", "num_output (8)", "4 channels"]),
    "interp-two-sizes": (layer("i", "Interp", ["x"], "interp_param { zoom_factor: 2 height: 3 "
                         "width: 3 }"), {"x": X}, [], ["'i'", "exactly one"]),
    "crop-past-the-end": (layer("crop", "Crop", ["x", "like"], "crop_param { offset: 3 }"),
                          {"x": X, "like": arr(2, 4, 3, 4)}, [], ["crop", "offset 3"]),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refusals_are_one_line(name: str, tmp_path: Path, capsys) -> None:
    layers, inputs, extra, words = REFUSED[name]
    proto, model = _write(tmp_path, layers, inputs)
    out = tmp_path / "m.pth"
    rc = convert_main([str(proto), str(model), "-o", str(out), "-q", *extra])
    refused((rc, capsys.readouterr().err, out), *words)
