"""Pooling ops: ``caffe_pool`` (Caffe ``Pooling``) and ``mcn_pool`` (``dagnn.Pooling``), run
by their :mod:`porting.layers` modules."""

from __future__ import annotations

from porting.layers import CaffePool2d, MatConvNetPool2d

from .checks import boolean, choice, ints
from .registry import chw, conv_out, register_module_op


def _caffe_shape(a, shapes, p):
    c, h, w = chw(shapes[0])
    if a.get("global_pooling"):
        return [(c, 1, 1)]
    (kh, kw), (sh, sw) = a.get("kernel", (1, 1)), a.get("stride", (1, 1))
    ph, pw = a.get("pad", (0, 0))
    ceil = a.get("ceil_mode", True)
    return [(c, conv_out(h, kh, sh, ph, ph, ceil=ceil), conv_out(w, kw, sw, pw, pw, ceil=ceil))]


def _mcn_shape(a, shapes, p):
    c, h, w = chw(shapes[0])
    (kh, kw), (sh, sw) = a["pool_size"], a.get("stride", (1, 1))
    t, b, left, r = a.get("pad", (0, 0, 0, 0))
    return [(c, conv_out(h, kh, sh, t, b), conv_out(w, kw, sw, left, r))]


register_module_op("caffe_pool", CaffePool2d.from_attrs, required=("method",),
                   attrs={"method": lambda f, v: choice(f, v, ("max", "ave")),
                          "kernel": lambda f, v: ints(f, v, 2, 1),
                          "stride": lambda f, v: ints(f, v, 2, 1),
                          "pad": lambda f, v: ints(f, v, 2, 0),
                          "global_pooling": boolean, "ceil_mode": boolean},
                   shape=_caffe_shape)
register_module_op("mcn_pool", MatConvNetPool2d.from_attrs, required=("pool_size", "method"),
                   attrs={"method": lambda f, v: choice(f, v, ("max", "avg")),
                          "pool_size": lambda f, v: ints(f, v, 2, 1),
                          "stride": lambda f, v: ints(f, v, 2, 1),
                          "pad": lambda f, v: ints(f, v, 4, 0)},
                   shape=_mcn_shape)
