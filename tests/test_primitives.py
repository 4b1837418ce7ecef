"""Layer primitives against loop re-implementations of the source kernels.

Each reference below is written from the source framework's CPU code, element by element,
so it shares nothing with the vectorised modules under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from porting.layers import (
    FLT_MAX,
    CaffeBatchNorm,
    CaffeLRN,
    CaffePool2d,
    CaffeScale,
    MatConvNetBatchNorm,
    MatConvNetConv2d,
    MatConvNetLRN,
    MatConvNetPool2d,
    caffe_pooled_size,
)

from conftest import rel_err


def caffe_pool_ref(x: np.ndarray, method: str, k: int, s: int, p: int) -> np.ndarray:
    """Caffe PoolingLayer::Forward_cpu, one window at a time."""
    n, c, h, w = x.shape
    oh = int(math.ceil((h + 2 * p - k) / s)) + 1
    ow = int(math.ceil((w + 2 * p - k) / s)) + 1
    if p:
        oh -= (oh - 1) * s >= h + p
        ow -= (ow - 1) * s >= w + p
    y = np.empty((n, c, oh, ow), np.float64)
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * s - p, j * s - p
            if method == "max":
                he, we = min(hs + k, h), min(ws + k, w)
                hs, ws = max(hs, 0), max(ws, 0)
                win = x[:, :, hs:he, ws:we]
                y[:, :, i, j] = win.max(axis=(2, 3)) if win.size else -FLT_MAX
            else:
                he, we = min(hs + k, h + p), min(ws + k, w + p)
                size = (he - hs) * (we - ws)
                hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
                with np.errstate(invalid="ignore", divide="ignore"):  # Caffe divides 0 by 0 too
                    y[:, :, i, j] = x[:, :, hs:he, ws:we].sum(axis=(2, 3)) / size
    return y


def mcn_pool_ref(x: np.ndarray, method: str, k: int, s: int, pad: tuple) -> np.ndarray:
    """MatConvNet pooling_cpu: floor size, windows clipped to the image."""
    t, b, left, r = pad
    n, c, h, w = x.shape
    oh, ow = (h + t + b - k) // s + 1, (w + left + r - k) // s + 1
    y = np.empty((n, c, oh, ow), np.float64)
    for i in range(oh):
        for j in range(ow):
            y1, x1 = max(i * s - t, 0), max(j * s - left, 0)
            y2, x2 = min(i * s - t + k, h), min(j * s - left + k, w)
            win = x[:, :, y1:y2, x1:x2]
            y[:, :, i, j] = win.max(axis=(2, 3)) if method == "max" else win.mean(axis=(2, 3))
    return y


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(3, 17), w=st.integers(3, 17), k=st.integers(1, 5), s=st.integers(1, 4),
    p=st.integers(0, 2), method=st.sampled_from(["max", "ave"]),
)
def test_caffe_pooling_matches_caffe_loops(h, w, k, s, p, method) -> None:
    if p >= k or k > h + 2 * p or k > w + 2 * p:
        return
    x = np.random.default_rng(h * 31 + w).standard_normal((1, 2, h, w)).astype(np.float32)
    ours = CaffePool2d(method, k, s, p)(torch.from_numpy(x)).double().numpy()
    np.testing.assert_allclose(ours, caffe_pool_ref(x, method, k, s, p), rtol=1e-6, atol=1e-6)


def test_caffe_pool_output_size_rule() -> None:
    # ceil((H + 2p - k)/s) + 1, minus one when the last window starts in the right padding.
    assert caffe_pooled_size(112, 3, 2, 0) == 56  # ResNet pool1
    assert caffe_pooled_size(55, 3, 2, 0) == 27  # CaffeNet pool1
    assert caffe_pooled_size(54, 3, 2, 0) == 27  # floor would give 26
    assert caffe_pooled_size(6, 2, 2, 1) == 4
    assert caffe_pooled_size(5, 3, 2, 1) == 3  # clipped: ceil gives 4, window 4 starts at H+p


def test_caffe_max_pool_empty_window_is_minus_flt_max() -> None:
    """k < s with p = 0: the last CEIL window lies wholly outside the input."""
    x = torch.arange(5.0).view(1, 1, 1, 5)
    y = CaffePool2d("max", (1, 1), (1, 3))(x)
    assert y.shape[-1] == 3 and y[0, 0, 0, 2].item() == -FLT_MAX
    assert y[0, 0, 0, :2].tolist() == [0.0, 3.0]


def test_caffe_ave_divisor_counts_padding_not_overhang() -> None:
    x = torch.ones(1, 1, 4, 4)
    y = CaffePool2d("ave", 3, 2, 1)(x)
    # First window covers one row/column of padding: 4 ones over a 3x3 divisor.
    assert y[0, 0, 0, 0].item() == pytest.approx(4 / 9)
    ref = caffe_pool_ref(x.numpy(), "ave", 3, 2, 1)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-7)


def test_caffe_global_pooling() -> None:
    x = torch.randn(2, 3, 8, 4)
    y = CaffePool2d("ave", global_pooling=True)(x)
    assert torch.allclose(y, x.mean(dim=(2, 3), keepdim=True), atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(2, 15), w=st.integers(2, 15), k=st.integers(1, 4), s=st.integers(1, 3),
    pad=st.tuples(*[st.integers(0, 2)] * 4), method=st.sampled_from(["max", "avg"]),
)
def test_matconvnet_pooling_matches_loops(h, w, k, s, pad, method) -> None:
    t, b, left, r = pad
    if k > h + t + b or k > w + left + r or max(pad) >= k:
        return
    x = np.random.default_rng(h * 17 + w).standard_normal((1, 2, h, w)).astype(np.float32)
    ours = MatConvNetPool2d(method, k, s, pad)(torch.from_numpy(x)).double().numpy()
    np.testing.assert_allclose(ours, mcn_pool_ref(x, method, k, s, pad), rtol=1e-6, atol=1e-6)


def test_matconvnet_padding_emulates_caffe_ceil() -> None:
    """import-caffe.py's pad [0 1 0 1] reproduces Caffe's CEIL pooling for these nets."""
    x = torch.randn(1, 3, 55, 54)
    ours = MatConvNetPool2d("max", 3, 2, (0, 1, 0, 1))(x)
    assert torch.equal(ours, CaffePool2d("max", 3, 2, 0)(x))


def test_matconvnet_conv_asymmetric_pad() -> None:
    conv = MatConvNetConv2d(2, 3, 3, stride=2, pad=(0, 1, 2, 0))
    x = torch.randn(1, 2, 7, 6)
    y = conv(x)
    ref = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, (2, 0, 0, 1)), conv.weight, conv.bias, stride=2)
    assert torch.equal(y, ref)
    assert y.shape[-2:] == ((7 + 1 - 3) // 2 + 1, (6 + 2 - 3) // 2 + 1)


def lrn_ref(x: np.ndarray, lo: int, hi: int, kappa: float, alpha: float, beta: float):
    """sum over channels [c - lo, c + hi] clipped, then x * (kappa + alpha*sum)^-beta."""
    c = x.shape[1]
    y = np.empty_like(x, dtype=np.float64)
    for ch in range(c):
        a, b = max(ch - lo, 0), min(ch + hi, c - 1)
        ssum = (x[:, a : b + 1].astype(np.float64) ** 2).sum(axis=1)
        y[:, ch] = x[:, ch] * (kappa + alpha * ssum) ** -beta
    return y


@pytest.mark.parametrize("n", [1, 4, 5, 6])
def test_matconvnet_lrn_window_and_alpha(n: int) -> None:
    x = np.random.default_rng(n).standard_normal((2, 9, 3, 3)).astype(np.float32)
    ours = MatConvNetLRN((n, 2.0, 1e-2, 0.75))(torch.from_numpy(x)).numpy()
    ref = lrn_ref(x, (n - 1) // 2, n // 2, 2.0, 1e-2, 0.75)  # even N: one more above
    assert rel_err(ours, ref) < 1e-6


def test_matconvnet_lrn_l2_trick_is_exact_l2() -> None:
    x = torch.randn(2, 2048, 2, 2)
    y = MatConvNetLRN((4096, 0, 1, 0.5))(x)
    assert rel_err(y, (x / x.norm(dim=1, keepdim=True)).numpy()) < 1e-6


def test_caffe_lrn_across_channels_divides_alpha() -> None:
    x = np.random.default_rng(0).standard_normal((1, 7, 4, 4)).astype(np.float32) * 30
    ours = CaffeLRN(5, 1e-4, 0.75, 1.0)(torch.from_numpy(x)).numpy()
    assert rel_err(ours, lrn_ref(x, 2, 2, 1.0, 1e-4 / 5, 0.75)) < 1e-6
    # PyTorch's own LRN uses the same convention for an odd size.
    torch_lrn = torch.nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0)(torch.from_numpy(x))
    assert rel_err(ours, torch_lrn.numpy()) < 1e-6


def test_caffe_lrn_within_channel() -> None:
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 6)).astype(np.float32) * 5
    ours = CaffeLRN(3, 0.5, 0.75, norm_region="WITHIN_CHANNEL")(torch.from_numpy(x)).numpy()
    pad = np.pad(x.astype(np.float64) ** 2, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.empty_like(pad[:, :, 1:-1, 1:-1])
    for i in range(5):
        for j in range(6):
            ssum = pad[:, :, i : i + 3, j : j + 3].sum(axis=(2, 3))
            ref[:, :, i, j] = x[:, :, i, j] * (1 + 0.5 / 9 * ssum) ** -0.75
    assert rel_err(ours, ref) < 1e-6
    with pytest.raises(ValueError, match="odd"):
        CaffeLRN(4)


def test_caffe_batchnorm_scale_factor() -> None:
    bn = CaffeBatchNorm(3, eps=1e-5).eval()
    bn.mean.copy_(torch.tensor([2.0, 4.0, 6.0]))
    bn.variance.copy_(torch.tensor([8.0, 2.0, 4.0]))
    bn.scale_factor.fill_(2.0)
    x = torch.randn(2, 3, 4, 4)
    ref = (x - torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)) / torch.sqrt(
        torch.tensor([4.0, 1.0, 2.0]).view(1, 3, 1, 1) + 1e-5)
    assert torch.allclose(bn(x), ref, atol=1e-6)
    bn.scale_factor.fill_(0.0)  # Caffe: a zero factor means zero statistics
    assert torch.allclose(bn(x), x / math.sqrt(1e-5), rtol=1e-6)


def test_caffe_batchnorm_training_accumulates_like_caffe() -> None:
    bn = CaffeBatchNorm(2, use_global_stats=False).train()
    bn.mean.zero_()
    bn.variance.zero_()
    bn.scale_factor.zero_()
    x = torch.randn(4, 2, 3, 3)
    y = bn(x)
    m = x.mean(dim=(0, 2, 3))
    v = x.var(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5)
    assert bn.scale_factor.item() == 1.0
    assert torch.allclose(bn.mean, m)
    assert torch.allclose(bn.variance, v * 36 / 35)


def test_caffe_scale() -> None:
    sc = CaffeScale(2)
    sc.weight.data = torch.tensor([2.0, 3.0])
    sc.bias.data = torch.tensor([1.0, -1.0])
    x = torch.ones(1, 2, 1, 1)
    assert sc(x).flatten().tolist() == [3.0, 2.0]


def test_matconvnet_batchnorm_uses_stored_sigma_without_eps() -> None:
    bn = MatConvNetBatchNorm(2, eps=1e-3).eval()
    bn.moments.copy_(torch.tensor([[1.0, 2.0], [-1.0, 0.5]]))
    bn.mult.data = torch.tensor([3.0, 1.0])
    bn.bias.data = torch.tensor([0.0, 1.0])
    x = torch.full((1, 2, 1, 1), 3.0)
    # (3-1)/2*3 + 0 = 3 ; (3+1)/0.5*1 + 1 = 9 : eps is never added to sigma in test mode
    assert bn(x).flatten().tolist() == [3.0, 9.0]
    bn.train()
    y = bn(torch.randn(8, 2, 4, 4))
    assert torch.allclose(y.mean(dim=(0, 2, 3)), bn.bias.data, atol=1e-5)
