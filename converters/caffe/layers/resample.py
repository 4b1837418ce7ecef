"""Resizing layers of the forks: ``Interp`` (DeepLab/PSPNet) and ``Upsample`` (SegNet/ENet
with a pooling mask; the YOLO forks' nearest-neighbour one); semantics in
:mod:`porting.layers.interp` (hszhao/PSPNet ``interp_layer.cpp``) and
:mod:`porting.layers.unpool` (alexgkendall/caffe-segnet ``upsample_layer.cpp``,
eric612/MobileNet-YOLO ``upsample_layer.cpp``)."""

from __future__ import annotations

from typing import Any

from porting.layers.interp import interp_size
from porting.layers.unpool import unpool_size

from ...limits import dims
from ..context import Ctx
from ..fields import Shape, Where, int_field, param
from ..net import CaffeLayer
from ..registry import Unit, register


def _interp_attrs(w: Where) -> dict[str, Any]:
    layer = w.layer
    p = param(layer, "interp_param")
    attrs: dict[str, Any] = {}
    if p.HasField("zoom_factor"):
        attrs["zoom_factor"] = int_field(w, "interp_param.zoom_factor", p.zoom_factor, 1)
    if p.HasField("shrink_factor"):
        attrs["shrink_factor"] = int_field(w, "interp_param.shrink_factor", p.shrink_factor, 1)
    if p.HasField("height") and p.HasField("width"):
        attrs["height"] = int_field(w, "interp_param.height", p.height, 1)
        attrs["width"] = int_field(w, "interp_param.width", p.width, 1)
    given = len(attrs) - ("width" in attrs) + (len(layer.bottoms) == 2)
    if given != 1:
        raise w.field("interp_param: the output size needs exactly one of zoom_factor, "
                      "shrink_factor, height and width, or a second bottom")
    for name in ("pad_beg", "pad_end"):
        value = int(getattr(p, name))
        if value > 0:
            raise w.field(f"interp_param.{name} must be <= 0 (the fork only crops), got "
                          f"{value}")
        attrs[name] = value
    return attrs


@register("Interp")
class Interp(Unit):
    """The forks' ``InterpLayer`` (bilinear, corners aligned) -> graph op ``interp``."""

    bottoms = (1, 2)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        a = _interp_attrs(w)
        x = ins[0]
        if x is not None and len(x) != 4:
            raise w.field(f"bottom {w.layer.bottoms[0]!r} has shape {dims(x)}, Interp needs "
                          "N x C x H x W")
        ref = ins[1] if len(ins) > 1 else None
        if x is None or (len(ins) > 1 and ref is None):
            return [None]
        size = (a["height"], a["width"]) if "height" in a else (
            tuple(ref[2:4]) if ref is not None else None)
        try:
            oh, ow = interp_size(x[2], x[3], zoom_factor=a.get("zoom_factor"),
                                 shrink_factor=a.get("shrink_factor"), size=size,
                                 pad_beg=a["pad_beg"], pad_end=a["pad_end"])
        except ValueError as exc:
            raise w.field(f"interp_param: {exc} (bottom {dims(x)})") from None
        return [(x[0], x[1], oh, ow)]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "interp", _interp_attrs(Where(layer, ctx.source)))


def _unpool_attrs(w: Where) -> dict[str, Any]:
    """SegNet's size rule: ``upsample_h/w``, else ``scale`` (or ``scale_h/w``) > 1 with
    ``pad_out`` only at scale 2."""
    p = param(w.layer, "upsample_param")
    if p.HasField("upsample_h") and p.HasField("upsample_w"):
        return {"size": [int_field(w, "upsample_param.upsample_h", p.upsample_h, 2),
                         int_field(w, "upsample_param.upsample_w", p.upsample_w, 2)]}
    if p.HasField("scale_h") != p.HasField("scale_w") or (
            p.HasField("scale") and p.HasField("scale_h")):
        raise w.field("upsample_param: give upsample_h and upsample_w, or scale, or scale_h "
                      "and scale_w")
    if p.HasField("scale_h"):
        scale = [int_field(w, "upsample_param.scale_h", p.scale_h, 2),
                 int_field(w, "upsample_param.scale_w", p.scale_w, 2)]
    else:
        scale = [int_field(w, "upsample_param.scale", p.scale, 2)] * 2
    pad_out = [bool(p.pad_out_h), bool(p.pad_out_w)]
    for flag, s, name in zip(pad_out, scale, "hw", strict=True):
        if flag and s != 2:
            raise w.field(f"upsample_param.pad_out_{name} needs scale 2, got {s}")
    return {"scale": scale, "pad_out": pad_out}


def _nearest_scale(w: Where) -> int:
    """The YOLO forks' one-bottom Upsample: ``scale`` (their default 1)."""
    p = param(w.layer, "upsample_param")
    return int_field(w, "upsample_param.scale", p.scale, 1) if p.HasField("scale") else 1


@register("Upsample")
class Upsample(Unit):
    """``Upsample``: with a second bottom SegNet's max-unpooling by the mask -> graph op
    ``max_unpool``; with one bottom the YOLO forks' nearest-neighbour -> ``upsample_nearest``."""

    bottoms = (1, 2)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        x = ins[0]
        if x is not None and len(x) != 4:
            raise w.field(f"bottom {w.layer.bottoms[0]!r} has shape {dims(x)}, Upsample needs "
                          "N x C x H x W")
        if len(ins) == 1:
            s = _nearest_scale(w)
            return [None if x is None else (x[0], x[1], x[2] * s, x[3] * s)]
        a = _unpool_attrs(w)
        mask = ins[1]
        if x is not None and mask is not None and x != mask:
            raise w.field(f"bottom {w.layer.bottoms[0]!r} {dims(x)} and its mask "
                          f"{w.layer.bottoms[1]!r} {dims(mask)} differ")
        if x is None:
            return [None]
        oh, ow = unpool_size(x[2], x[3], tuple(a.get("scale", (2, 2))),
                             tuple(a.get("pad_out", (False, False))),
                             tuple(a["size"]) if "size" in a else None)
        return [(x[0], x[1], oh, ow)]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        w = Where(layer, ctx.source)
        if len(layer.bottoms) == 1:
            ctx.add(layer, "upsample_nearest", {"scale": _nearest_scale(w)})
        else:
            ctx.add(layer, "max_unpool", _unpool_attrs(w))
