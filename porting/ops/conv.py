"""Convolution and fully connected ops: ``conv`` (Caffe ``Convolution``, ``dagnn.Conv``),
``deconv`` (Caffe ``Deconvolution``) and ``linear`` (Caffe ``InnerProduct``)."""

from __future__ import annotations

import torch.nn.functional as F

from porting.layers import im2col_conv2d
from porting.layers.deconv import deconv_output_size, deconvolution

from .checks import FieldError, choice, integer, ints
from .registry import GraphError, chw, conv_out, register_op


def _conv_check(where, a, p):
    w = p["weight"]
    if min(w.shape) < 1:
        raise FieldError(f"{where}.params.weight", f"empty filter bank {tuple(w.shape)}")
    b = p.get("bias")
    if b is not None and b.numel() != w.shape[0]:
        raise FieldError(f"{where}.params.bias", f"{b.numel()} values for {w.shape[0]} filters")


def _conv_shape(a, shapes, p):
    w = p.get("weight")
    if w is None or w.dim() != 4:
        return None
    _, h, wd = chw(shapes[0])
    o, _, kh, kw = w.shape
    t, b, left, r = a.get("pad", (0, 0, 0, 0))
    sh, sw = a.get("stride", (1, 1))
    dh, dw = a.get("dilation", (1, 1))
    return [(int(o), conv_out(h, kh, sh, t, b, dh), conv_out(wd, kw, sw, left, r, dw))]


@register_op("conv", attrs={"pad": lambda f, v: ints(f, v, 4, 0),
                            "stride": lambda f, v: ints(f, v, 2, 1),
                            "dilation": lambda f, v: ints(f, v, 2, 1),
                            "groups": lambda f, v: integer(f, v, 1, optional=True),
                            "algorithm": lambda f, v: choice(f, v, ("im2col", "native"))},
             slots={"weight": (True, (4,)), "bias": (False, (1,))},
             check=_conv_check, shape=_conv_shape, fresh=True)
def conv(x, a, p, training):
    t, b, left, r = a.get("pad", (0, 0, 0, 0))
    inp = x[0]
    if inp.dim() == 2:  # MatConvNet treats an N x C matrix as a 1x1 map
        inp = inp[:, :, None, None]
    w = p["weight"]
    # MatConvNet infers the groups from the filter depth at run time (groups=None here).
    groups = a.get("groups") or max(1, inp.shape[1] // w.shape[1])
    if inp.shape[1] != w.shape[1] * groups:
        raise GraphError(f"input has {inp.shape[1]} channels, filters expect "
                         f"{w.shape[1]} x {groups} groups")
    stride, dilation = tuple(a.get("stride", (1, 1))), tuple(a.get("dilation", (1, 1)))
    if a.get("_conv") == "im2col":
        return [im2col_conv2d(inp, w, p.get("bias"), stride, (t, b, left, r), dilation, groups)]
    if t == b and left == r:
        y = F.conv2d(inp, w, p.get("bias"), stride, (t, left), dilation, groups)
    else:
        y = F.conv2d(F.pad(inp, (left, r, t, b)), w, p.get("bias"), stride, 0, dilation, groups)
    return [y]


def _linear_check(where, a, p):
    w, b = p["weight"], p.get("bias")
    if b is not None and b.numel() != w.shape[0]:
        raise FieldError(f"{where}.params.bias", f"{b.numel()} values for {w.shape[0]} outputs")


def _linear_shape(a, shapes, p):
    w = p.get("weight")
    return None if w is None else [(int(w.shape[0]),)]


@register_op("linear", attrs={"axis": lambda f, v: integer(f, v, 1, 3)},  # after the batch axis
             slots={"weight": (True, (2,)), "bias": (False, (1,))},
             check=_linear_check, shape=_linear_shape, fresh=True)
def linear(x, a, p, training):
    axis = a.get("axis", 1)
    inp = x[0].flatten(axis)
    if inp.shape[-1] != p["weight"].shape[1]:
        raise GraphError(f"InnerProduct input has {inp.shape[-1]} values per item, weight "
                         f"expects {p['weight'].shape[1]}")
    return [F.linear(inp, p["weight"], p.get("bias"))]


def _deconv_check(where, layer, p):
    w, b = p["weight"], p.get("bias")
    groups = layer.get("attrs", {}).get("groups", 1)
    if min(w.shape) < 1 or w.shape[0] % groups:
        raise FieldError(f"{where}.params.weight", f"shape {tuple(w.shape)} for {groups} groups")
    if b is not None and b.numel() != w.shape[1] * groups:
        raise FieldError(f"{where}.params.bias",
                         f"{b.numel()} values for {w.shape[1] * groups} outputs")


def _deconv_shape(a, shapes, p):
    w = p.get("weight")
    if w is None or w.dim() != 4:
        return None
    _, h, wd = chw(shapes[0])
    (sh, sw), (ph, pw) = a.get("stride", (1, 1)), a.get("pad", (0, 0))
    dh, dw = a.get("dilation", (1, 1))
    return [(int(w.shape[1]) * a.get("groups", 1),
             max(1, deconv_output_size(h, int(w.shape[2]), sh, ph, dh)),
             max(1, deconv_output_size(wd, int(w.shape[3]), sw, pw, dw)))]


@register_op("deconv", attrs={"pad": lambda f, v: ints(f, v, 2, 0),
                              "stride": lambda f, v: ints(f, v, 2, 1),
                              "dilation": lambda f, v: ints(f, v, 2, 1),
                              "groups": lambda f, v: integer(f, v, 1)},
             slots={"weight": (True, (4,)), "bias": (False, (1,))},
             check=_deconv_check, shape=_deconv_shape, fresh=True)
def deconv(x, a, p, training):
    """Caffe ``Deconvolution``: weight ``(C_in, C_out / group, kh, kw)``."""
    return [deconvolution(x[0], p["weight"], p.get("bias"), tuple(a.get("stride", (1, 1))),
                          tuple(a.get("pad", (0, 0))), tuple(a.get("dilation", (1, 1))),
                          a.get("groups", 1))]
