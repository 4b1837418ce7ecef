"""``dagnn.ConvTranspose`` (and SimpleNN ``convt``): semantics in
:mod:`porting.layers.conv_transpose` (``vl_nnconvt``: upsample, ``[t b l r]`` crop, explicit
``numGroups``; filters FH x FW x K x FD, output K x numGroups channels)."""

from __future__ import annotations

import numpy as np

from ...limits import dims, integer, integers, show
from ..context import Ctx
from ..fields import Shape, Where
from ..layout import MCNLayer
from ..registry import Unit, register
from ..simplenn_layer import FromSimpleNN, SimpleNNLayer


def _crop(w: Where) -> list[int]:
    """``crop`` as ``dagnn.ConvTranspose``'s setter stores it: 1 value for all four borders,
    2 values ``[v u]`` as ``[v v u u]``, or ``[top bottom left right]``."""
    crop = w.ints("crop", (1, 2, 4), 0, 0)
    return [crop[0], crop[0], crop[1], crop[1]] if len(crop) == 2 else crop


def _groups(w: Where) -> int:
    value = w.layer.block.get("numGroups", 1)
    groups = integer(1 if value is None else value, 1)
    if groups is None:
        raise w.fail(f"block.numGroups must be a positive integer, got {show(value)}")
    return groups


def _has_bias(layer: MCNLayer) -> bool:
    return bool(layer.block.get("hasBias", len(layer.params) > 1))


@register("dagnn.ConvTranspose")
class ConvTranspose(Unit):
    """``dagnn.ConvTranspose`` (``upsample``, ``crop``, ``numGroups``, ``hasBias``) -> graph
    op ``mcn_convt``."""

    simplenn = ("convt",)
    simplenn_defaults = {"crop": 0.0, "upsample": 1.0, "numGroups": 1.0, "opts": []}

    @staticmethod
    def from_simplenn(s: SimpleNNLayer) -> FromSimpleNN:
        return s.filters(("upsample", "crop", "numGroups", "opts"))

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        up, crop, groups = w.ints("upsample", (1, 2), 1, 1), _crop(w), _groups(w)
        f = w.param(0)
        if f is None:
            raise w.fail(f"needs a filter parameter (params has {len(layer.params)})")
        if f.ndim > 4 or f.size == 0:
            raise w.fail(f"filter {layer.params[0]!r} has size {dims(f.shape)}; it must be a "
                         "non-empty FH x FW x K x FD array")
        fs = f.shape + (1,) * (4 - f.ndim)
        size = layer.block.get("size")
        if size is not None and integers(size, (4,), 1) not in (None, list(fs)):
            raise w.fail(f"filter {layer.params[0]!r} has size {dims(fs)} but block.size is "
                         f"{show(size)}")
        if fs[3] % groups:
            raise w.fail(f"numGroups {groups} does not divide the filter bank depth {fs[3]} "
                         f"(fourth dimension of filter {layer.params[0]!r})")
        if not isinstance(layer.block.get("hasBias", True), bool):
            raise w.fail(f"block.hasBias must be true or false, got "
                         f"{show(layer.block.get('hasBias'))}")
        if _has_bias(layer):
            b = w.param(1)
            if b is None:
                raise w.fail("block.hasBias is true but params has no bias")
            if b.size != fs[2] * groups:
                raise w.fail(f"bias {layer.params[1]!r} has {b.size} values for "
                             f"{fs[2] * groups} output channels (K x numGroups)")
        x = ins[0]
        if x is None:
            return [None]
        if len(x) == 2:
            x = (*x, 1, 1)
        if len(x) != 4 or x[1] != fs[3]:
            raise w.fail(f"input {layer.inputs[0]!r} has size {dims(x)} (N x C x H x W); "
                         f"filter {layer.params[0]!r} expects {fs[3]} channels (its depth FD)")
        out = [u * (s - 1) + k - c0 - c1 for u, s, k, c0, c1 in
               zip(up, x[2:], fs[:2], crop[0::2], crop[1::2], strict=True)]
        if min(out) < 1:
            raise w.fail(f"the output is empty ({out[0]}x{out[1]}): crop {crop} is too large "
                         f"for input {dims(x)}")
        return [(x[0], fs[2] * groups, *out)]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        f = ctx.value(layer, 0, "filter")
        f = f.reshape(f.shape + (1,) * (4 - f.ndim))
        # FH x FW x K x FD -> (FD, K, FH, FW): conv_transpose2d's layout
        params = {"weight": ctx.param(layer, 0, np.ascontiguousarray(f.transpose(3, 2, 0, 1)))}
        if _has_bias(layer):
            params["bias"] = ctx.param(layer, 1, ctx.value(layer, 1, "bias").reshape(-1))
        crop = [int(c) for c in np.atleast_1d(layer.block.get("crop", 0)).reshape(-1)]
        crop = crop * 4 if len(crop) == 1 else (
            [crop[0], crop[0], crop[1], crop[1]] if len(crop) == 2 else crop)
        up = [int(u) for u in np.atleast_1d(layer.block.get("upsample", 1)).reshape(-1)]
        ctx.add(layer, "mcn_convt", {"upsample": up * 2 if len(up) == 1 else up[:2],
                                     "crop": crop[:4],
                                     "groups": int(layer.block.get("numGroups", 1) or 1)},
                params)
