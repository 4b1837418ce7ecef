"""Layers that move values without arithmetic: ``Crop``, ``Tile``, SSD's ``Permute`` and
ShuffleNet's ``ShuffleChannel``; semantics in :mod:`porting.layers.shapes`
(weiliu89/caffe ssd ``permute_layer.cpp``: the listed axes first, then the others in order;
farmingyard/ShuffleNet ``shuffle_channel_layer.cpp``: a group x C/group transpose)."""

from __future__ import annotations

from porting.layers.shapes import crop_offsets, permute_order

from ...limits import dims
from ..context import Ctx
from ..fields import Shape, Where, axis_field, int_field, param
from ..net import CaffeLayer
from ..registry import Unit, register


@register("Crop")
class Crop(Unit):
    """Caffe's ``CropLayer``: bottom 0 cut to bottom 1's shape from ``axis`` at ``offset``
    -> graph op ``crop``."""

    bottoms = (2, 2)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        p = param(layer, "crop_param")
        x, like = ins
        offset = [int(o) for o in p.offset]
        if x is None or like is None:
            return [None]
        if len(x) != len(like):
            raise w.field(f"bottoms {dims(x)} and {dims(like)} have different numbers of axes")
        axis = axis_field(w, "crop_param.axis", int(p.axis), len(x))
        try:
            offs = crop_offsets(len(x), axis, offset)
        except ValueError as exc:
            raise w.field(f"crop_param.offset: {exc}") from None
        for i in range(axis, len(x)):
            if offs[i] + like[i] > x[i]:
                raise w.field(f"crop_param.offset {offs[i]} + size {like[i]} exceeds axis {i} "
                              f"of bottom {layer.bottoms[0]!r} {dims(x)}")
        return [(*x[:axis], *like[axis:])]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "crop_param")
        ctx.add(layer, "crop", {"axis": int(p.axis), "offset": [int(o) for o in p.offset]})


@register("Tile")
class Tile(Unit):
    """Caffe's ``TileLayer`` (``axis``, ``tiles``) -> graph op ``tile``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        p = param(w.layer, "tile_param")
        if not p.HasField("tiles"):
            raise w.field("tile_param.tiles is not set")
        tiles = int_field(w, "tile_param.tiles", p.tiles, 1)
        x = ins[0]
        if x is None:
            return [None]
        axis = axis_field(w, "tile_param.axis", int(p.axis), len(x))
        return [(*x[:axis], x[axis] * tiles, *x[axis + 1:])]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "tile_param")
        ctx.add(layer, "tile", {"axis": int(p.axis), "tiles": int(p.tiles)})


@register("Permute")
class Permute(Unit):
    """SSD's ``PermuteLayer`` (``order``) -> graph op ``permute``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        order = [int(o) for o in param(w.layer, "permute_param").order]
        x = ins[0]
        if x is None:
            if len(set(order)) != len(order):
                raise w.field(f"permute_param.order {order} repeats an axis")
            return [None]
        try:
            full = permute_order(len(x), order)
        except ValueError as exc:
            raise w.field(f"permute_param.order: {exc}") from None
        return [tuple(x[i] for i in full)]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "permute", {"order": [int(o) for o in
                                             param(layer, "permute_param").order]})


@register("ShuffleChannel")
class ShuffleChannel(Unit):
    """ShuffleNet's ``ShuffleChannelLayer`` (``group``) -> graph op ``shuffle_channel``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        group = int_field(w, "shuffle_channel_param.group",
                          param(w.layer, "shuffle_channel_param").group, 1)
        x = ins[0]
        if x is not None and (len(x) < 2 or x[1] % group):
            raise w.field(f"shuffle_channel_param.group {group} does not divide the channels "
                          f"of bottom {w.layer.bottoms[0]!r} {dims(x)}")
        return [x]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "shuffle_channel",
                {"group": int(param(layer, "shuffle_channel_param").group)})
