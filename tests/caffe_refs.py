"""The Caffe layers' forward passes as their sources write them, in plain float64 numpy
loops (BVLC and the forks cited in ``porting.layers``): the independent reference of
``tests/test_caffe_layers_new.py``. Each follows the C++ loop structure, not the torch code.
"""

from __future__ import annotations

import math

import numpy as np


def prelu(x, a):
    a = np.broadcast_to(np.asarray(a, np.float64).reshape(-1), (x.shape[1],))
    return np.maximum(x, 0) + a.reshape(1, -1, *[1] * (x.ndim - 2)) * np.minimum(x, 0)


def elu(x, alpha):
    return np.maximum(x, 0) + alpha * (np.exp(np.minimum(x, 0)) - 1)


def bnll(x):
    out = np.empty_like(x)
    for i, v in np.ndenumerate(x):
        out[i] = v + math.log(1.0 + math.exp(-v)) if v > 0 else math.log(1.0 + math.exp(v))
    return out


def exp_layer(x, base, scale, shift):
    b = math.e if base == -1 else base
    return np.power(b, shift + scale * x)


def log_layer(x, base, scale, shift):
    b = math.e if base == -1 else base
    return np.log(shift + scale * x) / math.log(b)


def deconv(x, w, bias, stride, pad, dil, group):
    n, cin, h, wd = x.shape
    _, cpg, kh, kw = w.shape
    oh = stride[0] * (h - 1) + dil[0] * (kh - 1) + 1 - 2 * pad[0]
    ow = stride[1] * (wd - 1) + dil[1] * (kw - 1) + 1 - 2 * pad[1]
    full = np.zeros((n, cpg * group, oh + 2 * pad[0] + stride[0] * kh * dil[0],
                     ow + 2 * pad[1] + stride[1] * kw * dil[1]))
    ipg = cin // group
    for g in range(group):
        xs = x[:, g * ipg:(g + 1) * ipg]
        for i in range(kh):
            for j in range(kw):
                contrib = np.einsum("nchw,co->nohw", xs, w[g * ipg:(g + 1) * ipg, :, i, j])
                r0, c0 = i * dil[0], j * dil[1]
                full[:, g * cpg:(g + 1) * cpg, r0:r0 + stride[0] * h:stride[0],
                     c0:c0 + stride[1] * wd:stride[1]] += contrib
    out = full[:, :, pad[0]:pad[0] + oh, pad[1]:pad[1] + ow]
    return out if bias is None else out + bias.reshape(1, -1, 1, 1)


def mvn(x, normalize_variance, across_channels, eps):
    n = x.shape[0] if across_channels else x.shape[0] * x.shape[1]
    flat = x.reshape(n, -1)
    c = flat - flat.mean(1, keepdims=True)
    if normalize_variance:
        c = c / (np.sqrt((c * c).mean(1, keepdims=True)) + eps)
    return c.reshape(x.shape)


def normalize(x, scale, across_spatial, eps):
    out = np.empty_like(x)
    for n in range(x.shape[0]):
        if across_spatial:
            out[n] = x[n] / math.sqrt((x[n] ** 2).sum() + eps)
        else:
            out[n] = x[n] / np.sqrt((x[n] ** 2).sum(0, keepdims=True) + eps)
    s = np.asarray(scale, np.float64).reshape(-1)
    return out * (s[0] if s.size == 1 else s.reshape(1, -1, 1, 1))


def shuffle_channel(x, group):
    out = np.empty_like(x)
    cols = x.shape[1] // group
    for i in range(group):
        for j in range(cols):
            out[:, j * group + i] = x[:, i * cols + j]
    return out


def interp(x, oh, ow, pad_beg=0, pad_end=0):
    """util/interp.cpp caffe_cpu_interp2: float32 coordinates, Dtype weights."""
    h1, w1 = x.shape[2] + pad_beg + pad_end, x.shape[3] + pad_beg + pad_end
    src = x[:, :, -pad_beg:-pad_beg + h1, -pad_beg:-pad_beg + w1]
    if (h1, w1) == (oh, ow):
        return src.copy()
    out = np.empty(x.shape[:2] + (oh, ow))
    rh = np.float32((h1 - 1) / (oh - 1)) if oh > 1 else np.float32(0)
    rw = np.float32((w1 - 1) / (ow - 1)) if ow > 1 else np.float32(0)
    for i in range(oh):
        hr = np.float32(rh * np.float32(i))
        a = int(hr)
        ap = 1 if a < h1 - 1 else 0
        l1 = float(hr) - a
        for j in range(ow):
            wr = np.float32(rw * np.float32(j))
            b = int(wr)
            bp = 1 if b < w1 - 1 else 0
            m1 = float(wr) - b
            out[:, :, i, j] = ((1 - l1) * ((1 - m1) * src[:, :, a, b] + m1 * src[:, :, a, b + bp])
                               + l1 * ((1 - m1) * src[:, :, a + ap, b]
                                       + m1 * src[:, :, a + ap, b + bp]))
    return out


def reduction(x, op, axis, coeff):
    flat = x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
    f = {"SUM": lambda r: r.sum(), "MEAN": lambda r: r.sum() / r.size,
         "ASUM": lambda r: np.abs(r).sum(), "SUMSQ": lambda r: (r * r).sum()}[op]
    return np.array([f(r) for r in flat]).reshape(x.shape[:axis]) * coeff


def argmax(x, top_k, out_max_val, axis):
    if axis is None:
        flat = x.reshape(x.shape[0], -1)
        out = np.zeros((x.shape[0], 2 if out_max_val else 1, top_k))
        for i, row in enumerate(flat):
            ranked = sorted(((v, j) for j, v in enumerate(row)), reverse=True)[:top_k]
            out[i, 0] = [j for _, j in ranked]
            if out_max_val:
                out[i, 1] = [v for v, _ in ranked]
        return out.reshape(out.shape + (1,) * (max(x.ndim, 3) - 3))  # Caffe's top shape
    moved = np.moveaxis(x, axis, -1)
    out = np.zeros(moved.shape[:-1] + (top_k,))
    for idx in np.ndindex(moved.shape[:-1]):
        ranked = sorted(((v, j) for j, v in enumerate(moved[idx])), reverse=True)[:top_k]
        out[idx] = [v if out_max_val else j for v, j in ranked]
    return np.moveaxis(out, -1, axis)


def tile(x, axis, tiles):
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    blocks = x.reshape(outer, -1)
    out = np.concatenate([np.concatenate([b] * tiles) for b in blocks])
    shape = list(x.shape)
    shape[axis] *= tiles
    return out.reshape(shape)


def max_pool_mask(x, k, s, p):
    """BVLC pooling_layer.cpp MAX with its mask (CEIL size, clipped windows)."""
    n, c, h, w = x.shape
    oh = int(math.ceil((h + 2 * p - k) / s)) + 1
    ow = int(math.ceil((w + 2 * p - k) / s)) + 1
    if p:
        oh -= (oh - 1) * s >= h + p
        ow -= (ow - 1) * s >= w + p
    top = np.full((n, c, oh, ow), -float(np.finfo(np.float32).max))
    mask = np.full((n, c, oh, ow), -1.0)
    for i in range(oh):
        for j in range(ow):
            hs, ws = max(i * s - p, 0), max(j * s - p, 0)
            he, we = min(i * s - p + k, h), min(j * s - p + k, w)
            for hh in range(hs, he):
                for ww in range(ws, we):
                    better = x[:, :, hh, ww] > top[:, :, i, j]
                    top[:, :, i, j] = np.where(better, x[:, :, hh, ww], top[:, :, i, j])
                    mask[:, :, i, j] = np.where(better, hh * w + ww, mask[:, :, i, j])
    return top, mask


def unpool(x, mask, oh, ow):
    out = np.zeros(x.shape[:2] + (oh * ow,))
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i, v in enumerate(x[n, c].ravel()):
                out[n, c, int(mask[n, c].ravel()[i])] = v
    return out.reshape(x.shape[:2] + (oh, ow))


def stochastic_test(x, k, s):
    n, c, h, w = x.shape
    oh, ow = int(math.ceil((h - k) / s)) + 1, int(math.ceil((w - k) / s)) + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = x[:, :, i * s:min(i * s + k, h), j * s:min(j * s + k, w)]
            cs, cv = win.sum((2, 3)), (win * win).sum((2, 3))
            out[:, :, i, j] = np.where(cs > 0, cv / np.where(cs > 0, cs, 1), 0)
    return out
