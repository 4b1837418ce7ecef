"""Shape and routing ops: ``identity`` (Caffe ``Split``), ``concat``, ``slice``, ``flatten``,
``reshape`` (Caffe's, with ``axis``/``num_axes``) and ``softmax``; Caffe's ``crop``,
``permute`` (SSD), ``tile``, ``shuffle_channel`` (ShuffleNet), ``reduction``, ``argmax`` and
``embed`` (:mod:`porting.layers.shapes`, :mod:`porting.layers.reduce`,
:mod:`porting.layers.embed`)."""

from __future__ import annotations

import torch

from porting.layers.embed import embed as embed_forward
from porting.layers.reduce import REDUCTIONS
from porting.layers.reduce import argmax as argmax_forward
from porting.layers.reduce import reduction as reduction_forward
from porting.layers.shapes import caffe_reshape, crop_offsets, permute_order, reshape_shape
from porting.layers.shapes import crop as crop_forward
from porting.layers.shapes import permute as permute_forward
from porting.layers.shapes import shuffle_channel as shuffle_forward
from porting.layers.shapes import tile as tile_forward

from .checks import FieldError, axis, boolean, choice, integer, ints, number
from .registry import register_op


@register_op("identity", attrs={"n_out": lambda f, v: integer(f, v, 1, 4096)})
def identity(x, a, p, training):
    return [x[0] for _ in range(max(1, a.get("n_out", 1)))]


@register_op("softmax", attrs={"axis": axis})
def softmax(x, a, p, training):
    return [torch.softmax(x[0], dim=a.get("axis", 1))]


def _concat_shape(a, shapes, p):
    return [(sum(s[0] for s in shapes),) + tuple(shapes[0][1:])]


@register_op("concat", arity=(1, None), attrs={"axis": axis}, shape=_concat_shape)
def concat(x, a, p, training):
    return [torch.cat(x, dim=a.get("axis", 1))]


def _slice_check(where, layer, p):
    attrs = layer.get("attrs", {})
    if not attrs.get("slice_points") and "n_out" not in attrs:
        raise FieldError(f"{where}.attrs", "a slice needs slice_points or n_out")


@register_op("slice", attrs={"axis": axis,
                             "slice_points": lambda f, v: ints(f, v, tuple(range(0, 4097)), 1,
                                                               1 << 30),
                             "n_out": lambda f, v: integer(f, v, 1, 4096)},
             check=_slice_check)
def slice_(x, a, p, training):
    ax, points = a.get("axis", 1), list(a.get("slice_points", []))
    n = x[0].shape[ax]
    if not points:
        k = a["n_out"]
        points = [n // k * i for i in range(1, k)]
    bounds = [0] + points + [n]
    return [x[0].narrow(ax, s, e - s) for s, e in zip(bounds[:-1], bounds[1:], strict=True)]


@register_op("flatten", attrs={"axis": axis, "end_axis": axis})
def flatten(x, a, p, training):
    return [torch.flatten(x[0], a.get("axis", 1), a.get("end_axis", -1))]


def _with_batch(shape):
    return (1,) + tuple(shape)


def _reshape_shape(a, shapes, p):
    out = reshape_shape(_with_batch(shapes[0]), a["shape"], a.get("axis", 0),
                        a.get("num_axes", -1))
    return [tuple(out[1:])]


@register_op("reshape", required=("shape",),
             attrs={"shape": lambda f, v: ints(f, v, tuple(range(0, 9)), -1, 1 << 30),
                    "axis": lambda f, v: integer(f, v, -9, 8),
                    "num_axes": lambda f, v: integer(f, v, -1, 8)},
             shape=_reshape_shape)
def reshape(x, a, p, training):
    """Caffe ``Reshape``: ``0`` copies an axis, one ``-1`` is inferred, ``axis``/``num_axes``
    choose the axes replaced (default: all)."""
    return [caffe_reshape(x[0], a["shape"], a.get("axis", 0), a.get("num_axes", -1))]


def _crop_shape(a, shapes, p):
    ax = a.get("axis", 2)
    full, like = _with_batch(shapes[0]), _with_batch(shapes[1])
    ax = ax % len(full)
    return [tuple(full[1:ax]) + tuple(like[max(ax, 1):])]


def _crop_check(where, layer, p):
    a = layer.get("attrs", {})
    try:
        crop_offsets(4, a.get("axis", 2), a.get("offset", []))
    except ValueError as exc:
        raise FieldError(f"{where}.attrs.offset", str(exc)) from None


@register_op("crop", arity=(2, 2),
             attrs={"axis": axis, "offset": lambda f, v: ints(f, v, (0, 1, 2, 3, 4), 0, 1 << 30)},
             check=_crop_check, shape=_crop_shape)
def crop(x, a, p, training):
    """Caffe ``Crop``: the first input cut to the second's shape from ``axis``."""
    return [crop_forward(x[0], x[1].shape, a.get("axis", 2), a.get("offset", []))]


def _permute_shape(a, shapes, p):
    full = _with_batch(shapes[0])
    order = permute_order(len(full), a["order"])
    return None if order[0] != 0 else [tuple(full[i] for i in order[1:])]


@register_op("permute", required=("order",),
             attrs={"order": lambda f, v: ints(f, v, tuple(range(0, 9)), 0, 7)},
             shape=_permute_shape)
def permute(x, a, p, training):
    """SSD ``Permute``."""
    return [permute_forward(x[0], a["order"])]


def _tile_shape(a, shapes, p):
    full = list(_with_batch(shapes[0]))
    full[a.get("axis", 1) % len(full)] *= a["tiles"]
    return [tuple(full[1:])]


@register_op("tile", required=("tiles",),
             attrs={"axis": axis, "tiles": lambda f, v: integer(f, v, 1, 1 << 16)},
             shape=_tile_shape)
def tile(x, a, p, training):
    """Caffe ``Tile``."""
    return [tile_forward(x[0], a.get("axis", 1), a["tiles"])]


@register_op("shuffle_channel", required=("group",),
             attrs={"group": lambda f, v: integer(f, v, 1, 1 << 16)})
def shuffle_channel(x, a, p, training):
    """ShuffleNet ``ShuffleChannel``."""
    return [shuffle_forward(x[0], a["group"])]


def _reduction_shape(a, shapes, p):
    full = _with_batch(shapes[0])
    return [tuple(full[1:a.get("axis", 0) % len(full)])]


@register_op("reduction", attrs={"operation": lambda f, v: choice(f, v, REDUCTIONS),
                                 "axis": axis, "coeff": number},
             shape=_reduction_shape)
def reduction(x, a, p, training):
    """Caffe ``Reduction`` over the axes from ``axis`` (default 0: the whole blob)."""
    return [reduction_forward(x[0], a.get("operation", "SUM"), a.get("axis", 0),
                              a.get("coeff", 1.0))]


def _argmax_shape(a, shapes, p):
    k = a.get("top_k", 1)
    if a.get("axis") is None:
        return [(2 if a.get("out_max_val") else 1, k) + (1,) * (max(len(shapes[0]) + 1, 3) - 3)]
    full = list(_with_batch(shapes[0]))
    full[a["axis"] % len(full)] = k
    return [tuple(full[1:])]


@register_op("argmax", attrs={"top_k": lambda f, v: integer(f, v, 1, 1 << 30),
                              "out_max_val": boolean, "axis": axis},
             shape=_argmax_shape)
def argmax(x, a, p, training):
    """Caffe ``ArgMax`` (indices as floats, ties to the larger index)."""
    return [argmax_forward(x[0], a.get("top_k", 1), a.get("out_max_val", False), a.get("axis"))]


def _embed_check(where, layer, p):
    w, b = p["weight"], p.get("bias")
    if b is not None and b.numel() != w.shape[1]:
        raise FieldError(f"{where}.params.bias", f"{b.numel()} values for {w.shape[1]} outputs")


@register_op("embed", slots={"weight": (True, (2,)), "bias": (False, (1,))},
             check=_embed_check,
             shape=lambda a, shapes, p: None if p.get("weight") is None else [
                 tuple(shapes[0]) + (int(p["weight"].shape[1]),)])
def embed(x, a, p, training):
    """Caffe ``Embed``: weight ``(input_dim, num_output)``."""
    return [embed_forward(x[0], p["weight"], p.get("bias"))]
