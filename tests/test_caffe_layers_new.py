"""The Caffe layer types of issue 21, each against an independent runtime.

Every type runs at odd sizes with batch 2 and is compared with (a) OpenCV dnn's Caffe
importer where OpenCV implements the type (a one-layer prototxt + caffemodel written through
``porting.converters.caffe.proto``) and (b) the source's formula in float64 numpy
(``tests/caffe_refs.py``) applied to the same bottom. Float64 runs of ``porting.layers``
must match the float64 formula to 1e-10; float32 runs go through ``assert_fp32_close``
against the float64 formula, with OpenCV's own float32 error as the machine's noise where
OpenCV runs the type. Index-valued outputs (ArgMax, pooling masks, Threshold) must be equal.
"""

from __future__ import annotations

import caffe_refs as ref
import numpy as np
import pytest
import torch
from caffe_oracle import run_opencv

from porting.layers import activations as act
from porting.layers.axpy import axpy
from porting.layers.deconv import deconvolution
from porting.layers.embed import embed
from porting.layers.interp import interp, interp_size
from porting.layers.normalize import fork_bn, mvn, ssd_normalize
from porting.layers.pooling_caffe import CaffePool2d
from porting.layers.pooling_stochastic import CaffeStochasticPool2d
from porting.layers.reduce import argmax, reduction
from porting.layers.shapes import crop, permute, reshape_shape, shuffle_channel, tile
from porting.layers.unpool import max_pool_with_mask, max_unpool, unpool_size, upsample_nearest

from conftest import assert_fp32_close, rel_err

FP64_TOL = 1e-10  # float64 against the float64 formula: summation order only
CV_MATCH = 1e-4   # OpenCV against the float64 formula (the blob criterion)


def arr(*shape: int, seed: int = 0, scale: float = 1.0, positive: bool = False) -> np.ndarray:
    """Float32-representable float64 values (the same bottom for every runtime)."""
    a = np.random.default_rng(seed).standard_normal(shape) * scale
    a = np.abs(a) + 0.05 if positive else a
    return a.astype(np.float32).astype(np.float64)


def run(fn, *inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``fn`` on the inputs as float64 and as float32 tensors."""
    with torch.no_grad():
        y64 = fn(*[torch.from_numpy(a) for a in inputs])
        y32 = fn(*[torch.from_numpy(a.astype(np.float32)) for a in inputs])
    return y64.numpy(), y32.numpy()


def check(fn, inputs: list[np.ndarray], ref64: np.ndarray, cv32: np.ndarray | None = None
          ) -> float:
    """The module docstring's rule; returns the float32 error against the float64 formula."""
    y64, y32 = run(fn, *inputs)
    assert y64.shape == ref64.shape, (y64.shape, ref64.shape)
    assert rel_err(y64, ref64) <= FP64_TOL, rel_err(y64, ref64)
    if cv32 is not None:
        assert cv32.shape == ref64.shape, (cv32.shape, ref64.shape)
        assert rel_err(cv32, ref64) <= CV_MATCH, rel_err(cv32, ref64)
        return assert_fp32_close(y32, cv32, ref64)
    return assert_fp32_close(y32, ref64.astype(np.float32), ref64)


def opencv_one(layer: str, inputs: dict[str, np.ndarray], blobs: list[np.ndarray] = ()
               ) -> np.ndarray:
    """One layer named ``l`` (top ``l``) run by OpenCV on ``inputs``."""
    return run_opencv(layer, inputs, {"l": list(blobs)} if blobs else {}, ["l"])[0]


X = (2, 3, 5, 7)  # batch 2, odd sizes


@pytest.mark.parametrize("shared", [False, True])
def test_prelu(shared: bool) -> None:
    x, a = arr(*X), arr(1 if shared else X[1], seed=1, positive=True)
    p = "prelu_param { channel_shared: true }" if shared else ""
    cv = opencv_one(f'layer {{ name: "l" type: "PReLU" bottom: "x" top: "l" {p} }}',
                    {"x": x}, [a])
    check(act.prelu, [x, a], ref.prelu(x, a), cv)


ELEMENTWISE = {  # name -> (layer text, torch fn, float64 formula, input needs > 0)
    "ELU": ('elu_param { alpha: 0.7 }', lambda x: act.elu(x, 0.7),
            lambda x: ref.elu(x, 0.7), False),
    "AbsVal": ("", act.absval, np.abs, False),
    "BNLL": ("", act.bnll, ref.bnll, False),
    "Exp": ("exp_param { base: 2 scale: 0.5 shift: 0.25 }",
            lambda x: act.caffe_exp(x, 2.0, 0.5, 0.25), lambda x: ref.exp_layer(x, 2, .5, .25),
            False),
    "Exp-e": ("exp_param { scale: -1.5 }", lambda x: act.caffe_exp(x, -1.0, -1.5),
              lambda x: ref.exp_layer(x, -1, -1.5, 0), False),
    # OpenCV 4.x computes a plain log whatever log_param says: this one is checked against
    # the float64 formula only (see test_elementwise_against_opencv)
    "Log": ("log_param { base: 10 scale: 2 shift: 0.5 }",
            lambda x: act.caffe_log(x, 10.0, 2.0, 0.5), lambda x: ref.log_layer(x, 10, 2, .5),
            True),
    "Log-e": ("", act.caffe_log, lambda x: ref.log_layer(x, -1, 1, 0), True),
    "Power": ("power_param { power: 3 scale: 0.5 shift: 0.25 }",
              lambda x: act.caffe_power(x, 3.0, 0.5, 0.25), lambda x: (0.25 + 0.5 * x) ** 3,
              False),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_against_opencv(name: str) -> None:
    param, fn, formula, positive = ELEMENTWISE[name]
    x = arr(*X, seed=2, scale=3.0, positive=positive)
    cv = None if name in OPENCV_IGNORES else opencv_one(
        f'layer {{ name: "l" type: "{name.split("-")[0]}" bottom: "x" top: "l" {param} }}',
        {"x": x})
    check(fn, [x], formula(x), cv)


OPENCV_IGNORES = {"Log"}  # OpenCV's Log layer ignores base, scale and shift


def test_threshold_is_exact() -> None:
    x = arr(*X, seed=3)
    x.flat[:5] = 0.25  # values at the threshold give 0 (strict >)
    y64, y32 = run(lambda t: act.threshold(t, 0.25), x)
    assert np.array_equal(y64, (x > 0.25).astype(np.float64))
    assert np.array_equal(y32, (x > 0.25).astype(np.float32))


def test_power_constant_cases() -> None:
    x = arr(*X, seed=4)
    x.flat[0] = np.nan
    y64, _ = run(lambda t: act.caffe_power(t, 2.0, 0.0, 3.0), x)
    assert np.array_equal(y64, np.full(X, 9.0))  # Caffe writes shift^power everywhere
    y64, _ = run(lambda t: act.caffe_power(t, 0.0, 2.0, 3.0), x)
    assert np.array_equal(y64, np.ones(X))


@pytest.mark.parametrize("case", [
    # (cin, cout, group, kernel, stride, pad, dilation, bias)
    (3, 4, 1, 3, 2, 1, 1, True), (6, 6, 3, 3, 2, 1, 1, True), (6, 6, 3, 3, 2, 1, 2, True),
    (4, 2, 2, 4, 3, 0, 1, False), (3, 5, 1, 2, 1, 1, 3, True),
])
def test_deconvolution(case) -> None:
    cin, cout, g, k, s, p, d, bias = case
    x, w = arr(2, cin, 5, 7, seed=5), arr(cin, cout // g, k, k, seed=6)
    b = arr(cout, seed=7) if bias else None
    param = (f"convolution_param {{ num_output: {cout} group: {g} kernel_size: {k} "
             f"stride: {s} pad: {p} dilation: {d} bias_term: {str(bias).lower()} }}")
    # OpenCV 4.x's Deconvolution ignores dilation (its top has the undilated size)
    cv = None if d > 1 else opencv_one(
        f'layer {{ name: "l" type: "Deconvolution" bottom: "x" top: "l" {param} }}',
        {"x": x}, [w] + ([b] if bias else []))

    def fn(x, w, *b):
        return deconvolution(x, w, b[0] if b else None, (s, s), (p, p), (d, d), g)
    check(fn, [x, w] + ([b] if bias else []), ref.deconv(x, w, b, (s, s), (p, p), (d, d), g), cv)


def test_depthwise_is_grouped_convolution() -> None:
    x, w, b = arr(*X, seed=8), arr(3, 1, 3, 3, seed=9), arr(3, seed=10)
    cv = opencv_one('layer { name: "l" type: "ConvolutionDepthwise" bottom: "x" top: "l" '
                    'convolution_param { num_output: 3 kernel_size: 3 stride: 2 pad: 1 } }',
                    {"x": x}, [w, b])
    ref64 = np.stack([sum(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))[
        :, :, i:i + 5:2, j:j + 7:2] * w[:, 0, i, j].reshape(1, 3, 1, 1)
        for i in range(3) for j in range(3))])[0] + b.reshape(1, 3, 1, 1)
    check(lambda x, w, b: torch.nn.functional.conv2d(x, w, b, 2, 1, 1, 3), [x, w, b], ref64, cv)


@pytest.mark.parametrize("axis,offset", [(2, [1, 2]), (1, [1]), (2, [])])
def test_crop(axis: int, offset: list[int]) -> None:
    x, like = arr(2, 5, 7, 9, seed=11), arr(2, 3, 4, 5, seed=12)
    shape = list(x.shape[:axis]) + list(like.shape[axis:])
    offs = [0] * axis + (offset * (4 - axis) if len(offset) == 1 else offset or [0] * (4 - axis))
    ref64 = x[tuple(slice(o, o + n) for o, n in zip(offs, shape, strict=True))]
    param = " ".join(f"offset: {o}" for o in offset)
    cv = run_opencv(f'layer {{ name: "l" type: "Crop" bottom: "x" bottom: "y" top: "l" '
                    f'crop_param {{ axis: {axis} {param} }} }}', {"x": x, "y": like}, {}, ["l"])[0]
    check(lambda t: crop(t, like.shape, axis, offset), [x], ref64, cv)


@pytest.mark.parametrize("across,eps", [(False, 1e-6), (True, 1e-10)])
def test_mvn(across: bool, eps: float) -> None:
    x = arr(*X, seed=13, scale=2.0) + 0.5
    cv = opencv_one(f'layer {{ name: "l" type: "MVN" bottom: "x" top: "l" mvn_param {{ '
                    f'across_channels: {str(across).lower()} eps: {eps} }} }}', {"x": x})
    check(lambda t: mvn(t, True, across, eps), [x], ref.mvn(x, True, across, eps), cv)
    check(lambda t: mvn(t, False, across, eps), [x], ref.mvn(x, False, across, eps))


@pytest.mark.parametrize("across,shared", [(False, False), (True, True), (False, True),
                                           (True, False)])
def test_ssd_normalize(across: bool, shared: bool) -> None:
    x, s = arr(*X, seed=14), arr(1 if shared else 3, seed=15, positive=True) * 10
    flags = f"across_spatial: {str(across).lower()} channel_shared: {str(shared).lower()}"
    # OpenCV refuses across_spatial with a per-channel scale (an assertion in its forward)
    cv = None if across and not shared else opencv_one(
        f'layer {{ name: "l" type: "Normalize" bottom: "x" top: "l" norm_param {{ {flags} '
        f'eps: 1e-6 }} }}', {"x": x}, [s])
    check(lambda t, s: ssd_normalize(t, s, across, 1e-6), [x, s],
          ref.normalize(x, s, across, 1e-6), cv)


def test_permute() -> None:
    x = arr(*X, seed=16)
    cv = opencv_one('layer { name: "l" type: "Permute" bottom: "x" top: "l" permute_param { '
                    'order: 0 order: 2 order: 3 order: 1 } }', {"x": x})
    check(lambda t: permute(t, [0, 2, 3, 1]), [x], np.transpose(x, (0, 2, 3, 1)), cv)
    check(lambda t: permute(t, [0, 3]), [x], np.transpose(x, (0, 3, 1, 2)))  # rest appended


def test_shuffle_channel() -> None:
    x = arr(2, 12, 3, 5, seed=17)
    cv = opencv_one('layer { name: "l" type: "ShuffleChannel" bottom: "x" top: "l" '
                    'shuffle_channel_param { group: 3 } }', {"x": x})
    check(lambda t: shuffle_channel(t, 3), [x], ref.shuffle_channel(x, 3), cv)


@pytest.mark.parametrize("param,kw", [
    ("zoom_factor: 3", {"zoom_factor": 3}), ("height: 11 width: 4", {"size": (11, 4)}),
    ("height: 3 width: 16", {"size": (3, 16)}),
])
def test_interp_against_opencv(param: str, kw: dict) -> None:
    x = arr(*X, seed=18)
    oh, ow = interp_size(5, 7, **kw)
    cv = opencv_one(f'layer {{ name: "l" type: "Interp" bottom: "x" top: "l" interp_param {{ '
                    f'{param} }} }}', {"x": x})
    check(lambda t: interp(t, (oh, ow)), [x], ref.interp(x, oh, ow), cv)


@pytest.mark.parametrize("kw,pads", [({"shrink_factor": 2}, (0, 0)),
                                     ({"zoom_factor": 2}, (-1, 0)),
                                     ({"shrink_factor": 3}, (-1, -1)),
                                     ({"size": (5, 7)}, (0, 0))])  # same size: a copy
def test_interp_crop_and_shrink(kw: dict, pads: tuple[int, int]) -> None:
    x = arr(2, 3, 9, 8, seed=19)  # OpenCV ignores pad_beg/pad_end: float64 formula only
    oh, ow = interp_size(9, 8, pad_beg=pads[0], pad_end=pads[1], **kw)
    check(lambda t: interp(t, (oh, ow), *pads), [x], ref.interp(x, oh, ow, *pads))


@pytest.mark.parametrize("op", ["SUM", "ASUM", "SUMSQ", "MEAN"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_reduction(op: str, axis: int) -> None:
    x = arr(*X, seed=20)
    check(lambda t: reduction(t, op, axis, -0.5), [x], ref.reduction(x, op, axis, -0.5))


@pytest.mark.parametrize("top_k,out_max_val,axis", [(1, False, None), (3, True, None),
                                                     (2, False, 1), (2, True, 3),
                                                     (1, False, 2)])
def test_argmax(top_k: int, out_max_val: bool, axis: int | None) -> None:
    x = np.round(arr(*X, seed=21) * 2) / 2  # many ties: the larger index ranks first
    y64, y32 = run(lambda t: argmax(t, top_k, out_max_val, axis), x)
    expect = ref.argmax(x, top_k, out_max_val, axis)
    assert np.array_equal(y64, expect) and np.array_equal(y32, expect.astype(np.float32))


@pytest.mark.parametrize("axis,tiles", [(1, 3), (0, 2), (3, 2)])
def test_tile(axis: int, tiles: int) -> None:
    x = arr(*X, seed=22)
    y64, y32 = run(lambda t: tile(t, axis, tiles), x)
    assert np.array_equal(y64, ref.tile(x, axis, tiles))


def test_embed() -> None:
    idx = np.array([[0, 4, 2], [3, 3, 1]], dtype=np.float64)
    w, b = arr(5, 6, seed=23), arr(6, seed=24)
    y64, _ = run(lambda i, w, b: embed(i, w, b), idx, w, b)
    assert np.array_equal(y64, w[idx.astype(int)] + b)
    for bad in (np.array([[0.5]]), np.array([[5.0]]), np.array([[-1.0]])):
        with pytest.raises(ValueError, match="Embed"):
            embed(torch.from_numpy(bad), torch.from_numpy(w))


@pytest.mark.parametrize("ashape", [(2, 3, 1, 1), (2, 3)])
def test_axpy(ashape) -> None:
    a, x, y = arr(*ashape, seed=25), arr(*X, seed=26), arr(*X, seed=27)
    check(axpy, [a, x, y], a.reshape(2, 3, 1, 1) * x + y)


def test_fork_bn() -> None:
    x = arr(*X, seed=28)
    scale, shift, mean = arr(1, 3, seed=29), arr(1, 3, seed=30), arr(1, 3, seed=31)
    var = arr(1, 3, seed=32, positive=True)
    ref64 = (scale.reshape(1, 3, 1, 1) * (x - mean.reshape(1, 3, 1, 1))
             / np.sqrt(var.reshape(1, 3, 1, 1) + 1e-5) + shift.reshape(1, 3, 1, 1))
    check(lambda *t: fork_bn(*t, eps=1e-5), [x, scale, shift, mean, var], ref64)


@pytest.mark.parametrize("k,s,p", [(3, 2, 1), (2, 2, 0), (3, 2, 0), (3, 1, 1)])
def test_max_pool_mask_and_unpool(k: int, s: int, p: int) -> None:
    x = np.round(arr(2, 3, 7, 9, seed=33) * 2) / 2  # ties: the first maximum wins
    pool = CaffePool2d("max", k, s, p)
    top64, mask64 = ref.max_pool_mask(x, k, s, p)
    cv_top, cv_mask = run_opencv(
        f'layer {{ name: "pool" type: "Pooling" bottom: "x" top: "pool" top: "mask" '
        f'pooling_param {{ pool: MAX kernel_size: {k} stride: {s} pad: {p} }} }}\n'
        'layer { name: "m" type: "Power" bottom: "mask" top: "m" }\n'
        'layer { name: "p" type: "Power" bottom: "pool" top: "p" }\n', {"x": x}, {}, ["p", "m"])
    assert np.array_equal(cv_mask, mask64) and np.array_equal(cv_top, top64)
    for dtype in (torch.float64, torch.float32):
        top, mask = max_pool_with_mask(torch.from_numpy(x).to(dtype), pool)
        assert np.array_equal(mask.numpy(), mask64) and np.array_equal(top.numpy(), top64)
    # SegNet's Upsample of another blob with that mask (overlapping windows repeat indices)
    y = arr(*top64.shape, seed=34)
    oh, ow = 7, 9  # the pooled plane the mask indexes
    y64, y32 = run(lambda t, m: max_unpool(t, m, (oh, ow)), y, mask64)
    assert np.array_equal(y64, ref.unpool(y, mask64, oh, ow))
    assert np.array_equal(y32, ref.unpool(y, mask64, oh, ow).astype(np.float32))


def test_unpool_size_and_range() -> None:
    assert unpool_size(4, 5, (2, 2), (True, False)) == (7, 10)
    assert unpool_size(4, 5, (2, 2), upsample_hw=(8, 9)) == (8, 9)
    with pytest.raises(ValueError, match="mask index out of range"):
        max_unpool(torch.ones(1, 1, 2, 2), torch.full((1, 1, 2, 2), 16.0), (4, 4))


def test_upsample_nearest() -> None:
    x = arr(*X, seed=35)
    y64, _ = run(lambda t: upsample_nearest(t, 3), x)
    expect = np.empty((2, 3, 15, 21))
    for h in range(15):
        for w in range(21):
            expect[:, :, h, w] = x[:, :, h // 3, w // 3]
    assert np.array_equal(y64, expect)


@pytest.mark.parametrize("k,s", [(3, 2), (2, 2), (3, 1)])
def test_stochastic_pooling_test_time(k: int, s: int) -> None:
    x = arr(2, 3, 7, 9, seed=36)
    x[:, 0] = np.abs(x[:, 0])  # a channel of positive activations, others mixed signs
    check(CaffeStochasticPool2d(k, s), [x], ref.stochastic_test(x, k, s))


@pytest.mark.parametrize("shape,dims,axis,num_axes,expect", [
    ((2, 3, 5, 7), [0, -1], 0, -1, [2, 105]),
    ((2, 3, 5, 7), [0, -1], 1, 2, [2, 3, 5, 7]),
    ((2, 3, 5, 7), [-1], 1, 2, [2, 15, 7]),
    ((2, 3, 5, 7), [1, 1], -1, 0, [2, 3, 5, 7, 1, 1]),
    ((2, 3, 5, 7), [5, -1], 2, -1, [2, 3, 5, 7]),
    ((2, 6), [2, 3], 1, 1, [2, 2, 3]),
])
def test_reshape_shape(shape, dims, axis, num_axes, expect) -> None:
    assert reshape_shape(shape, dims, axis, num_axes) == expect


def test_reshape_shape_refuses() -> None:
    for dims, axis, num_axes in (([-1, -1], 0, -1), ([4, 0], 0, 1), ([7], 1, 1)):
        with pytest.raises(ValueError, match="Reshape"):
            reshape_shape((2, 3, 5), dims, axis, num_axes)
