"""``dagnn.BatchNorm``, ``dagnn.LRN`` and ``dagnn.Scale``: semantics in
:mod:`porting.layers.batchnorm` (``vl_nnbnorm`` with stored moments [mean sigma]) and
:mod:`porting.layers.lrn` (``vl_nnnormalize``: alpha not divided by N)."""

from __future__ import annotations

import numpy as np

from ...limits import dims, finite, integer, show
from ..context import Ctx
from ..fields import Shape, Where
from ..layout import MCNLayer
from ..registry import Unit, register


@register("dagnn.BatchNorm")
class BatchNorm(Unit):
    """``dagnn.BatchNorm`` (mult, bias, moments C x 2; ``epsilon``) -> graph op ``mcn_bn``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        w.number("epsilon", 1e-5, positive=True)
        values = [w.param(i) for i in range(3)]
        if any(v is None for v in values):
            raise w.fail(f"needs mult, bias and moments params (params has "
                         f"{len(layer.params)})")
        mult, bias, moments = values
        x = ins[0]
        c = x[1] if x is not None and len(x) > 1 else mult.size
        if mult.size != c or bias.size != c or moments.size != 2 * c:
            raise w.fail(f"params {layer.params[0]!r}/{layer.params[1]!r}/"
                         f"{layer.params[2]!r} have sizes {dims(mult.shape)}/"
                         f"{dims(bias.shape)}/{dims(moments.shape)}; {c} channels "
                         f"need {c}, {c} and {c}x2 values")
        return [x]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        mult, bias = ctx.value(layer, 0, "mult"), ctx.value(layer, 1, "bias")
        moments = ctx.value(layer, 2, "moments")
        c = mult.size
        if bias.size != c or moments.size != 2 * c:
            raise ctx.err(layer, f"mult/bias/moments sizes {mult.size}/{bias.size}/"
                                 f"{list(moments.shape)} do not describe {c} channels "
                                 "(moments must be C x 2 [mean sigma])")
        params = {"mult": ctx.param(layer, 0, mult.reshape(-1)),
                  "bias": ctx.param(layer, 1, bias.reshape(-1)),
                  "moments": ctx.param(layer, 2, moments.reshape(c, 2))}
        ctx.add(layer, "mcn_bn", {"eps": float(layer.block.get("epsilon", 1e-5))}, params)


@register("dagnn.LRN")
class LRN(Unit):
    """``dagnn.LRN`` (``param`` = [N kappa alpha beta]) -> graph op ``mcn_lrn``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        param = w.layer.block.get("param", [5, 1, 1e-4, 0.75])
        values = [finite(v) for v in param] if isinstance(param, list) else []
        if len(values) != 4 or any(v is None for v in values) or integer(values[0], 1) is None:
            raise w.fail("block.param must be [N kappa alpha beta] (N a positive "
                         f"integer, all finite), got {show(param)}")
        return [ins[0]]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        param = [float(p) for p in np.atleast_1d(layer.block.get("param",
                                                                 [5, 1, 1e-4, 0.75]))]
        if len(param) != 4:
            raise ctx.err(layer, f"param must be [N kappa alpha beta], got {param}")
        ctx.add(layer, "mcn_lrn", {"param": param})


@register("dagnn.Scale")
class Scale(Unit):
    """``dagnn.Scale`` (a scale param or a second input; ``hasBias``) -> graph op ``scale``."""

    inputs = (1, 2)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        if len(w.layer.inputs) == 1 and w.param(0) is None:
            raise w.fail("needs a scale parameter")
        return [ins[0]]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        w = ctx.value(layer, 0, "scale")
        w3 = w.reshape(w.shape + (1,) * (3 - w.ndim)) if w.ndim < 3 else w
        params = {"weight": ctx.param(layer, 0, w3.transpose(2, 0, 1))}
        if layer.block.get("hasBias", len(layer.params) > 1):
            b = ctx.value(layer, 1, "bias")
            b3 = b.reshape(b.shape + (1,) * (3 - b.ndim)) if b.ndim < 3 else b
            params["bias"] = ctx.param(layer, 1, b3.transpose(2, 0, 1))
        ctx.add(layer, "scale", {"axis": 1}, params)
