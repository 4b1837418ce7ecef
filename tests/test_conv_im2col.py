"""Caffe's im2col convolution: batched (no per-image loop) and, for 1x1 filters, without the
im2col copy; the same columns, so bit for bit the same GEMM as ``unfold``, however the
images are chunked."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import porting.layers.conv as conv
from porting.layers import im2col_conv2d


def _unfold_gemm(x, weight, bias, stride, pad, groups, dilation=(1, 1)):
    t, b, left, r = pad
    xp = F.pad(x, (left, r, t, b)) if any(pad) else x
    o, ci, kh, kw = weight.shape
    oh = (xp.shape[-2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[-1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    cols = F.unfold(xp, (kh, kw), dilation=dilation, stride=stride)
    cols = cols.reshape(-1, groups, ci * kh * kw, oh * ow)
    y = torch.matmul(weight.reshape(groups, o // groups, ci * kh * kw), cols)
    return y.reshape(-1, o, oh, ow) + bias.view(1, -1, 1, 1)


@pytest.mark.parametrize(("n", "c", "h", "w", "o", "s", "p", "g"), [
    (2, 16, 14, 14, 32, 1, 0, 1), (3, 16, 15, 13, 8, 2, 0, 1), (2, 8, 9, 9, 8, 2, 1, 2),
    (1, 8, 7, 8, 4, 3, 0, 2), (2, 4, 5, 5, 6, 1, 0, 1)])
def test_one_by_one_skips_im2col_bit_for_bit(n, c, h, w, o, s, p, g) -> None:
    gen = torch.Generator().manual_seed(n * 100 + c)
    x = torch.randn(n, c, h, w, generator=gen)
    weight, bias = torch.randn(o, c // g, 1, 1, generator=gen), torch.randn(o, generator=gen)
    got = im2col_conv2d(x, weight, bias, (s, s), (p, p, p, p), (1, 1), g)
    assert torch.equal(got, _unfold_gemm(x, weight, bias, (s, s), (p, p, p, p), g))
    ref = F.conv2d(x.double(), weight.double(), bias.double(), s, p, 1, g)
    assert torch.allclose(got.double(), ref, rtol=1e-5, atol=1e-5)


def test_batched_equals_one_image_at_a_time() -> None:
    gen = torch.Generator().manual_seed(0)
    x, weight = torch.randn(4, 6, 11, 9, generator=gen), torch.randn(8, 6, 3, 3, generator=gen)
    bias = torch.randn(8, generator=gen)
    batched = im2col_conv2d(x, weight, bias, (2, 1), (1, 1, 0, 2), (1, 1), 1)
    one = torch.cat([im2col_conv2d(x[i:i + 1], weight, bias, (2, 1), (1, 1, 0, 2), (1, 1), 1)
                     for i in range(4)])
    assert torch.equal(batched, one)


@pytest.mark.parametrize(("n", "c", "h", "w", "o", "k", "s", "p", "d", "g"), [
    (5, 6, 13, 11, 8, 3, (1, 2), (0, 1, 2, 1), (1, 1), 1),
    (3, 8, 20, 17, 8, 3, (1, 1), (1, 1, 1, 1), (2, 2), 2),
    (4, 4, 30, 30, 4, 5, (3, 2), (2, 2, 1, 1), (1, 3), 4),
    (7, 3, 31, 29, 16, 7, (2, 2), (3, 3, 3, 3), (1, 1), 1),
    (6, 12, 9, 9, 6, 1, (2, 2), (0, 0, 0, 0), (1, 1), 3)])
@pytest.mark.parametrize("chunk_bytes", [1, 3000, 1 << 40])
def test_columns_and_chunks_are_unfold_bit_for_bit(n, c, h, w, o, k, s, p, d, g, chunk_bytes,
                                                     monkeypatch) -> None:
    """The strided-view columns equal ``F.unfold``'s, and chunking the images (one at a time,
    a few, all) changes no bit; stride, dilation, groups and ``[t b l r]`` padding."""
    monkeypatch.setattr(conv, "IM2COL_CHUNK_BYTES", chunk_bytes)
    gen = torch.Generator().manual_seed(n * 31 + k)
    x = torch.randn(n, c, h, w, generator=gen)
    weight, bias = torch.randn(o, c // g, k, k, generator=gen), torch.randn(o, generator=gen)
    with torch.inference_mode():
        got = im2col_conv2d(x, weight, bias, s, p, d, g)
    assert torch.equal(got, _unfold_gemm(x, weight, bias, s, p, g, d))


def test_autograd_runs_unchunked(monkeypatch) -> None:
    """With gradients recorded the images are not chunked (``out=`` has no backward), and
    the gradient is the convolution's."""
    monkeypatch.setattr(conv, "IM2COL_CHUNK_BYTES", 1)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 4, 9, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, 4, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(5, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *a: im2col_conv2d(*a, (1, 2), (1, 0, 2, 1), (1, 1), 1), (x, weight, bias))
