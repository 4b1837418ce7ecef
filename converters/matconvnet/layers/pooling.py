"""``dagnn.Pooling`` (and SimpleNN ``pool``): semantics in
:mod:`porting.layers.pooling_matconvnet` (``vl_nnpool``: floor output size, ``[t b l r]`` pad,
avg divided by the full window)."""

from __future__ import annotations

from ...limits import dims, show
from ..context import Ctx, pad4, pair
from ..fields import Shape, Where
from ..layout import MCNLayer, canon_dict
from ..registry import Unit, register
from ..simplenn_layer import FromSimpleNN, SimpleNNLayer


@register("dagnn.Pooling")
class Pooling(Unit):
    """``dagnn.Pooling`` (``method`` max/avg, ``poolSize``, ``pad``, ``stride``) -> graph op
    ``mcn_pool``."""

    simplenn = ("pool",)
    simplenn_defaults = {"method": "max", "pad": 0.0, "stride": 1.0, "opts": []}

    @staticmethod
    def from_simplenn(s: SimpleNNLayer) -> FromSimpleNN:
        settings = s.settings
        if "pool" not in settings:
            raise s.fail(f"{s.where}: pool layer without field 'pool'")
        block = {"method": settings["method"], "poolSize": settings["pool"],
                 "pad": settings["pad"], "stride": settings["stride"], "opts": settings["opts"]}
        return FromSimpleNN([], canon_dict(block))

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        method = layer.block.get("method", "max")
        if not isinstance(method, str) or method not in ("max", "avg"):
            raise w.fail(f"block.method must be 'max' or 'avg', got {show(method)}")
        pool = w.ints("poolSize", (1, 2), 1, 1)
        pad = w.ints("pad", (1, 4), 0, 0)
        stride = w.ints("stride", (1, 2), 1, 1)
        x = ins[0]
        if x is None:
            return [None]
        if len(x) != 4:
            raise w.fail(f"input {layer.inputs[0]!r} has size {dims(x)}; pooling "
                         "needs H x W x C x N")
        out = []
        for axis, (s, k, st) in enumerate(zip(x[2:], pool, stride, strict=True)):
            padded = s + pad[2 * axis] + pad[2 * axis + 1]
            if padded < k:
                name = ("height", "width")[axis]
                raise w.fail(f"block.poolSize {name} {k} is larger than input "
                             f"{layer.inputs[0]!r} {s} + pad {pad[2 * axis]}+"
                             f"{pad[2 * axis + 1]} (input {dims(x)}, N x C x H x W)")
            out.append((padded - k) // st + 1)
        return [(x[0], x[1], *out)]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        method = layer.block.get("method", "max")
        if method not in ("max", "avg"):
            raise ctx.err(layer, f"pooling method {method!r} is not max or avg")
        try:
            attrs = {"method": method, "pool_size": pair(layer.block.get("poolSize"), 1),
                     "stride": pair(layer.block.get("stride"), 1),
                     "pad": pad4(layer.block.get("pad"))}
        except ValueError as exc:
            raise ctx.err(layer, str(exc)) from None
        ctx.add(layer, "mcn_pool", attrs)
