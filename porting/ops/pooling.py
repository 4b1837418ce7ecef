"""Pooling ops: ``caffe_pool`` (Caffe ``Pooling``) and ``mcn_pool`` (``dagnn.Pooling``), run
by their :mod:`porting.layers` modules; ``caffe_pool_mask`` (MAX with Caffe's mask top),
``caffe_stochastic_pool`` (STOCHASTIC at test time); and resampling: ``interp`` (the
DeepLab/PSPNet ``Interp``), ``max_unpool`` (SegNet's ``Upsample`` with a pooling mask),
``upsample_nearest`` (the YOLO forks' ``Upsample``)."""

from __future__ import annotations

from porting.layers import CaffePool2d, MatConvNetPool2d
from porting.layers.interp import interp as interp_forward
from porting.layers.interp import interp_size
from porting.layers.pooling_stochastic import CaffeStochasticPool2d
from porting.layers.unpool import max_pool_with_mask, unpool_size
from porting.layers.unpool import max_unpool as max_unpool_forward
from porting.layers.unpool import upsample_nearest as upsample_forward

from .checks import FieldError, boolean, choice, integer, ints
from .registry import GraphError, chw, conv_out, module_op, register_module_op, register_op


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


def _mask_shape(a, shapes, p):
    out = _caffe_shape(a, shapes, p)
    return None if out is None else out * 2


_GEOMETRY = {"kernel": lambda f, v: ints(f, v, 2, 1), "stride": lambda f, v: ints(f, v, 2, 1),
             "global_pooling": boolean, "ceil_mode": boolean}


@register_op("caffe_pool_mask", attrs={**_GEOMETRY, "pad": lambda f, v: ints(f, v, 2, 0),
                                       "method": lambda f, v: choice(f, v, ("max",))},
             shape=_mask_shape)
def caffe_pool_mask(x, a, p, training):
    """Caffe MAX ``Pooling`` with two tops: the pooled map and its mask (``h * W + w``)."""
    return list(max_pool_with_mask(x[0], CaffePool2d.from_attrs({**a, "method": "max"})))


_stochastic = module_op(CaffeStochasticPool2d.from_attrs)


@register_op("caffe_stochastic_pool", module=CaffeStochasticPool2d.from_attrs, attrs=_GEOMETRY,
             shape=_caffe_shape)
def caffe_stochastic_pool(x, a, p, training):
    """STOCHASTIC pooling's test-time form (Caffe samples at random when training)."""
    if training:
        raise GraphError("STOCHASTIC pooling samples at random when training; only its "
                         "test-time form (the activation-weighted average) is implemented")
    return _stochastic(x, a, p, training)



def _interp_sizes(a, h, w, ref_hw=None):
    size = (a["height"], a["width"]) if "height" in a else ref_hw
    return interp_size(h, w, zoom_factor=a.get("zoom_factor"),
                       shrink_factor=a.get("shrink_factor"), size=size,
                       pad_beg=a.get("pad_beg", 0), pad_end=a.get("pad_end", 0))


def _interp_check(where, layer, p):
    a = layer.get("attrs", {})
    given = (("zoom_factor" in a) + ("shrink_factor" in a) + ("height" in a)
             + (len(layer["inputs"]) == 2))
    if given != 1 or ("height" in a) != ("width" in a):
        raise FieldError(f"{where}.attrs", "Interp needs exactly one of zoom_factor, "
                                           "shrink_factor, height and width, or a second input")


def _interp_shape(a, shapes, p):
    c, h, w = chw(shapes[0])
    ref = chw(shapes[1])[1:] if len(shapes) > 1 else None
    return [(c,) + _interp_sizes(a, h, w, ref)]


@register_op("interp", arity=(1, 2),
             attrs={"zoom_factor": lambda f, v: integer(f, v, 1, 4096),
                    "shrink_factor": lambda f, v: integer(f, v, 1, 4096),
                    "height": lambda f, v: integer(f, v, 1, 1 << 16),
                    "width": lambda f, v: integer(f, v, 1, 1 << 16),
                    "pad_beg": lambda f, v: integer(f, v, -(1 << 16), 0),
                    "pad_end": lambda f, v: integer(f, v, -(1 << 16), 0)},
             check=_interp_check, shape=_interp_shape, fresh=True)
def interp(x, a, p, training):
    ref = tuple(int(s) for s in x[1].shape[-2:]) if len(x) > 1 else None
    h, w = (int(s) for s in x[0].shape[-2:])
    return [interp_forward(x[0], _interp_sizes(a, h, w, ref), a.get("pad_beg", 0),
                           a.get("pad_end", 0))]


def _unpool_hw(a, h, w):
    return unpool_size(h, w, tuple(a.get("scale", (2, 2))),
                       tuple(a.get("pad_out", (False, False))),
                       tuple(a["size"]) if "size" in a else None)


def _pair_of_bools(field, v):
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise FieldError(field, f"expected 2 booleans, got {v!r}")
    for b in v:
        boolean(field, b)


@register_op("max_unpool", arity=(2, 2),
             attrs={"scale": lambda f, v: ints(f, v, 2, 1, 4096),
                    "pad_out": _pair_of_bools,
                    "size": lambda f, v: ints(f, v, 2, 1, 1 << 16)},
             shape=lambda a, shapes, p: [(chw(shapes[0])[0],) + _unpool_hw(a, *chw(shapes[0])[1:])],
             fresh=True)
def max_unpool(x, a, p, training):
    """SegNet ``Upsample``: inputs (values, mask)."""
    h, w = (int(s) for s in x[0].shape[-2:])
    return [max_unpool_forward(x[0], x[1], _unpool_hw(a, h, w))]


@register_op("upsample_nearest", attrs={"scale": lambda f, v: integer(f, v, 1, 4096)},
             shape=lambda a, shapes, p: [(chw(shapes[0])[0],) + tuple(
                 d * a.get("scale", 1) for d in chw(shapes[0])[1:])], fresh=True)
def upsample_nearest(x, a, p, training):
    return [upsample_forward(x[0], a.get("scale", 1))]
