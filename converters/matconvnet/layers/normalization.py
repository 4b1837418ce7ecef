"""``dagnn.BatchNorm`` (SimpleNN ``bnorm``), ``dagnn.LRN`` (``normalize``/``lrn``) and
``dagnn.Scale`` (a scale param or input vars): semantics in :mod:`porting.layers.batchnorm`
(``vl_nnbnorm`` with stored moments [mean sigma]), :mod:`porting.layers.lrn`
(``vl_nnnormalize``: alpha not divided by N) and ``bsxfun`` (the ``mcn_scale`` op)."""

from __future__ import annotations

import numpy as np

from ...limits import dims, finite, integer, show
from ..context import Ctx
from ..fields import Shape, Where
from ..layout import MCNLayer, canon_dict, column
from ..registry import Unit, register
from ..simplenn_layer import FromSimpleNN, SimpleNNLayer


@register("dagnn.BatchNorm")
class BatchNorm(Unit):
    """``dagnn.BatchNorm`` (mult, bias, moments C x 2; ``epsilon``) -> graph op ``mcn_bn``."""

    simplenn = ("bnorm",)

    @staticmethod
    def from_simplenn(s: SimpleNNLayer) -> FromSimpleNN:
        weights = s.weights
        if len(weights) < 2 or weights[0].size == 0 or weights[1].size == 0:
            raise s.fail(
                f"{s.where}: bnorm layer without mult/bias weights; MatConvNet cannot run it "
                "either (vl_simplenn_tidy fails on an empty weights cell, vl_nnbnorm "
                "refuses empty MULTIPLIERS/BIASES). import-caffe.py's SimpleNN output "
                "writes bnorm layers this way: import with --output-format dagnn")
        mult, bias = column(weights[0]), column(weights[1])
        # vl_simplenn_tidy's fill-in for BatchNorm layers saved without moments
        moments = weights[2] if len(weights) > 2 else np.zeros((mult.size, 2), np.float32)
        params = [s.param("m", 0, mult), s.param("b", 1, bias),
                  s.param("x", 2, moments, decay=0.0 if s.decays else None)]
        return FromSimpleNN(params, canon_dict(s.keep("epsilon")))

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        w.number("epsilon", 1e-5, positive=True)
        values = [w.param(i) for i in range(3)]
        if any(v is None for v in values):
            raise w.fail(f"needs mult, bias and moments params (params has "
                         f"{len(layer.params)})")
        mult, bias, moments = values
        if mult.size == 0 or bias.size == 0:
            raise w.fail(f"params {layer.params[0]!r}/{layer.params[1]!r} (mult/bias) are "
                         "empty; MatConvNet cannot run this layer either (vl_nnbnorm: 'The "
                         "MULTIPLIERS size does not match the DATA depth')")
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

    simplenn = ("normalize", "lrn")
    simplenn_defaults = {"param": [5.0, 1.0, 0.0001 / 5, 0.75]}

    @staticmethod
    def from_simplenn(s: SimpleNNLayer) -> FromSimpleNN:
        return FromSimpleNN([], canon_dict({"param": s.settings["param"]}))

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
    """``dagnn.Scale``: ``bsxfun(@times, x, s)`` (+ ``bsxfun(@plus, ., b)`` with ``hasBias``)
    where the scale and bias come from ``horzcat(inputs, params)``: parameters (-> graph op
    ``scale``, per channel) or input vars, e.g. a squeeze-and-excitation gate (-> graph op
    ``mcn_scale``)."""

    inputs = (1, 3)
    feeds = {1: (1, 1, 1, 1), 2: (1, 1, 1, 1)}  # a scale / bias broadcast over x

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        has_bias = _scale_has_bias(layer)
        if not isinstance(has_bias, bool):
            raise w.fail(f"block.hasBias must be true or false, got {show(has_bias)}")
        operands = len(layer.inputs) + len(layer.params)
        if operands != 2 + has_bias:
            raise w.fail(f"a Scale {'with' if has_bias else 'without'} bias multiplies its "
                         f"input by a scale{' and adds a bias' if has_bias else ''}: "
                         f"{2 + has_bias} inputs and params together, got {len(layer.inputs)} "
                         f"input(s) and {len(layer.params)} param(s)")
        shapes = list(ins) + [_four(w.param(i)) for i in range(len(layer.params))]
        if any(s is None or len(s) != 4 for s in shapes):
            return [ins[0]]
        out = []
        for k in range(4):  # bsxfun: each dimension equal or 1
            sizes = {s[k] for s in shapes} - {1}
            if len(sizes) > 1:
                raise w.fail("operands of sizes " + ", ".join(dims(s) for s in shapes)
                             + " (N x C x H x W) do not broadcast (bsxfun needs equal sizes "
                             "or 1)")
            out.append(sizes.pop() if sizes else 1)
        return [tuple(out)]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        if len(layer.inputs) > 1:
            params = {}
            for i, slot in enumerate(("weight", "bias")[len(layer.inputs) - 1:]):
                if i < len(layer.params):
                    v = ctx.value(layer, i, slot)
                    v = v.reshape(v.shape + (1,) * (4 - v.ndim))
                    params[slot] = ctx.param(layer, i, np.ascontiguousarray(
                        v.transpose(3, 2, 0, 1)))
            ctx.add(layer, "mcn_scale", {"has_bias": _scale_has_bias(layer)}, params)
            return
        w = ctx.value(layer, 0, "scale")
        w3 = w.reshape(w.shape + (1,) * (3 - w.ndim)) if w.ndim < 3 else w
        params = {"weight": ctx.param(layer, 0, w3.transpose(2, 0, 1))}
        if _scale_has_bias(layer):
            b = ctx.value(layer, 1, "bias")
            b3 = b.reshape(b.shape + (1,) * (3 - b.ndim)) if b.ndim < 3 else b
            params["bias"] = ctx.param(layer, 1, b3.transpose(2, 0, 1))
        ctx.add(layer, "scale", {"axis": 1}, params)


def _scale_has_bias(layer: MCNLayer) -> object:
    """``hasBias`` (the class default is true; files without the property: a bias operand
    present)."""
    return layer.block.get("hasBias", len(layer.inputs) + len(layer.params) > 2)


def _four(value: np.ndarray | None) -> Shape | None:
    """A MATLAB array's size as N x C x H x W."""
    if value is None or value.ndim > 4:
        return None
    s = value.shape + (1,) * (4 - value.ndim)
    return (s[3], s[2], s[0], s[1])
