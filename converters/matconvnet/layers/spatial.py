"""Spatial layers: ``dagnn.Crop`` (:mod:`porting.layers.crop`), the spatial transformer's
``dagnn.BilinearSampler``, ``dagnn.AffineGridGenerator`` and
``dagnn.UniformScalingGridGenerator`` (:mod:`porting.layers.bilinear_sampler`: grids of (y, x)
in [-1, 1], pixel centres at the ends) and ``dagnn.ROIPooling``
(:mod:`porting.layers.roi_pooling`). ``dagnn.ElementWise`` itself is refused: it is the
abstract base of the element-wise classes and computes nothing."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...limits import dims, finite, integer, integers, show
from ..context import Ctx
from ..fields import Shape, Where
from ..layout import MCNLayer
from ..registry import Unit, register


def _offset(w: Where) -> list[int]:
    crop = w.layer.block.get("crop", [0, 0])
    got = integers(crop, (2, 4), 0) if crop is not None else [0, 0]
    if got is None:
        raise w.fail(f"block.crop must be [cy cx], 2 integers >= 0, got {show(crop)}")
    return got[:2]


@register("dagnn.Crop")
class Crop(Unit):
    """``dagnn.Crop``: input 1 cropped to input 2's height and width from offset ``crop =
    [cy cx]``, clipped to the border -> graph op ``mcn_crop``."""

    inputs = (2, 2)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        _offset(w)
        x, ref = ins
        if x is None or ref is None or len(x) != 4 or len(ref) != 4:
            return [None]
        if x[2] < ref[2] or x[3] < ref[3]:
            raise w.fail(f"input {w.layer.inputs[0]!r} {dims(x)} is smaller than "
                         f"{w.layer.inputs[1]!r} {dims(ref)}: MatConvNet cannot crop it")
        return [(x[0], x[1], ref[2], ref[3])]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        crop = [int(c) for c in np.atleast_1d(layer.block.get("crop", [0, 0])).reshape(-1)]
        ctx.add(layer, "mcn_crop", {"offset": crop[:2]})


@register("dagnn.BilinearSampler")
class BilinearSampler(Unit):
    """``dagnn.BilinearSampler`` (input, ``2 x Ho x Wo x N`` grid) -> graph op
    ``bilinear_sampler`` (samples outside the image read zeros, as MatConvNet's GPU kernel
    computes; ``--bilinear-kernel cpu`` keeps its CPU kernel's border)."""

    inputs = (2, 2)
    feeds = {1: (1, 1, 2, 1)}  # a grid of one sample

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        x, g = ins
        if x is None or g is None or len(x) != 4 or len(g) != 4:
            return [None]
        if g[2] != 2:
            raise w.fail(f"grid {w.layer.inputs[1]!r} has size {dims(g)}; it must be a "
                         "2 x Ho x Wo x N array")
        if g[0] % x[0]:
            raise w.fail(f"{g[0]} grids for {x[0]} images: the number of grids must be a "
                         "multiple of the number of images")
        return [(g[0], x[1], g[3], g[1])]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        ctx.add(layer, "bilinear_sampler",
                {"cpu_kernel": ctx.options.get("bilinear_kernel") == "cpu"})


def _grid_size(w: Where) -> tuple[int, int]:
    ho, wo = (integer(w.layer.block.get(k, 0), 1) for k in ("Ho", "Wo"))
    if ho is None or wo is None:
        raise w.fail(f"block.Ho and block.Wo must be positive integers, got "
                     f"{show(w.layer.block.get('Ho'))} and {show(w.layer.block.get('Wo'))}")
    return ho, wo


def _grid_check(n: int):
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        ho, wo = _grid_size(w)
        t = ins[0]
        if t is None:
            return [None]
        if len(t) != 4 or tuple(t[1:]) != (n, 1, 1):
            raise w.fail(f"input {w.layer.inputs[0]!r} has size {dims(t)}; it must be "
                         f"1 x 1 x {n} x N (N x C x H x W: N x {n} x 1 x 1)")
        return [(t[0], wo, 2, ho)]
    return staticmethod(check)


def _grid_attrs(layer: MCNLayer) -> dict[str, Any]:
    return {"ho": int(layer.block["Ho"]), "wo": int(layer.block["Wo"])}


@register("dagnn.AffineGridGenerator")
class AffineGridGenerator(Unit):
    """``dagnn.AffineGridGenerator`` (``Ho``, ``Wo``; a ``1 x 1 x 6 x N`` input: each image's
    2 x 3 matrix in column order) -> graph op ``affine_grid``."""

    feeds = {0: (1, 6, 1, 1)}
    check = _grid_check(6)

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        ctx.add(layer, "affine_grid", _grid_attrs(layer))


@register("dagnn.UniformScalingGridGenerator")
class UniformScalingGridGenerator(Unit):
    """``dagnn.UniformScalingGridGenerator`` (``Ho``, ``Wo``; a ``1 x 1 x 3 x N`` input
    ``[s ty tx]``) -> graph op ``uniform_scaling_grid``."""

    feeds = {0: (1, 3, 1, 1)}
    check = _grid_check(3)

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        ctx.add(layer, "uniform_scaling_grid", _grid_attrs(layer))


def _transform(w: Where) -> float | list[float]:
    value = w.layer.block.get("transform", 1)
    items = value if isinstance(value, list) else [value]
    numbers = [finite(v) for v in items]
    if len(numbers) not in (1, 2, 6) or any(v is None for v in numbers):
        raise w.fail(f"block.transform must be 1, 2 or 6 finite numbers (a scalar, 2 x 1 or "
                     f"2 x 3), got {show(value)}")
    return numbers[0] if len(numbers) == 1 else numbers


@register("dagnn.ROIPooling")
class ROIPooling(Unit):
    """``dagnn.ROIPooling`` (``method`` max/avg, ``subdivisions``, ``transform``, ``flatten``;
    regions ``5 x R`` = [image x1 y1 x2 y2], 1-based) -> graph op ``roi_pool``."""

    inputs = (2, 2)
    feeds = {1: (1, 1, 5, 1)}  # one region

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        method = w.layer.block.get("method", "max")
        if method not in ("max", "avg"):
            raise w.fail(f"block.method must be 'max' or 'avg', got {show(method)}")
        w.ints("subdivisions", (1, 2), 1, 6)
        _transform(w)
        if not isinstance(w.layer.block.get("flatten", False), bool | int | float):
            raise w.fail(f"block.flatten must be true or false, got "
                         f"{show(w.layer.block.get('flatten'))}")
        return [None]  # R is the number of regions, known at run time

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        sub = [int(s) for s in np.atleast_1d(layer.block.get("subdivisions", [6, 6]))]
        value = layer.block.get("transform", 1)
        transform = [float(v) for v in value] if isinstance(value, list) else float(value)
        if isinstance(transform, list) and len(transform) == 1:
            transform = transform[0]
        ctx.add(layer, "roi_pool", {"method": str(layer.block.get("method", "max")),
                                    "subdivisions": sub * 2 if len(sub) == 1 else sub[:2],
                                    "transform": transform,
                                    "flatten": bool(layer.block.get("flatten", False))})


@register("dagnn.ElementWise")
class ElementWise(Unit):
    """``dagnn.ElementWise`` itself: refused (see :meth:`check`)."""

    inputs = (0, None)
    outputs = (0, None)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        raise w.fail("dagnn.ElementWise is the abstract base class of MatConvNet's "
                     "element-wise layers (Sum, Scale, BatchNorm, ...); it has no forward of "
                     "its own (dagnn.Layer.forward returns no output), so MatConvNet computes "
                     "nothing for this layer")

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        raise ctx.err(layer, "dagnn.ElementWise computes nothing (an abstract base class)")
