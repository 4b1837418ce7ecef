"""``mcn_convt``: MatConvNet's transposed convolution (``dagnn.ConvTranspose``, SimpleNN
``convt``) with ``upsample``, a ``[top bottom left right]`` crop and explicit groups."""

from __future__ import annotations

from porting.layers.conv_transpose import conv_transpose2d

from .checks import FieldError, integer, ints
from .registry import GraphError, chw, register_op


def _check(where, layer, p):
    w, b = p["weight"], p.get("bias")
    groups = layer.get("attrs", {}).get("groups", 1)
    if min(w.shape) < 1:
        raise FieldError(f"{where}.params.weight", f"empty filter bank {tuple(w.shape)}")
    if w.shape[0] % groups:
        raise FieldError(f"{where}.attrs.groups",
                         f"{groups} groups do not divide the filter bank depth {w.shape[0]}")
    if b is not None and b.numel() != w.shape[1] * groups:
        raise FieldError(f"{where}.params.bias",
                         f"{b.numel()} values for {w.shape[1] * groups} output channels")


def _shape(a, shapes, p):
    w = p.get("weight")
    if w is None or w.dim() != 4:
        return None
    _, h, wd = chw(shapes[0])
    t, b, left, r = a.get("crop", (0, 0, 0, 0))
    uh, uw = a.get("upsample", (1, 1))
    oh = uh * (h - 1) + w.shape[2] - t - b
    ow = uw * (wd - 1) + w.shape[3] - left - r
    return [(int(w.shape[1]) * a.get("groups", 1), max(1, oh), max(1, ow))]


@register_op("mcn_convt", attrs={"upsample": lambda f, v: ints(f, v, 2, 1),
                                 "crop": lambda f, v: ints(f, v, 4, 0),
                                 "groups": lambda f, v: integer(f, v, 1)},
             slots={"weight": (True, (4,)), "bias": (False, (1,))},
             check=_check, shape=_shape, fresh=True)
def mcn_convt(x, a, p, training):
    inp, w = x[0], p["weight"]
    if inp.dim() == 2:  # an N x C matrix is a 1x1 map
        inp = inp[:, :, None, None]
    if inp.shape[1] != w.shape[0]:
        raise GraphError(f"input has {inp.shape[1]} channels, the filter bank depth is "
                         f"{w.shape[0]}")
    return [conv_transpose2d(inp, w, p.get("bias"), tuple(a.get("upsample", (1, 1))),
                             tuple(a.get("crop", (0, 0, 0, 0))), a.get("groups", 1))]
