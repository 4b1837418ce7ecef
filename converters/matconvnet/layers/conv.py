"""``dagnn.Conv`` (and SimpleNN ``conv``): semantics in :mod:`porting.layers.conv`
(``vl_nnconv``'s ``[t b l r]`` padding; filters H x W x C/groups x K, groups from the filter
depth)."""

from __future__ import annotations

from ...limits import dims, integers, show
from ..context import Ctx, pad4, pair
from ..fields import Shape, Where
from ..layout import MCNLayer
from ..registry import Unit, register
from ..simplenn_layer import FromSimpleNN, SimpleNNLayer


@register("dagnn.Conv")
class Conv(Unit):
    """``dagnn.Conv`` (``pad``, ``stride``, ``dilate``, ``hasBias``) -> graph op ``conv``."""

    simplenn = ("conv",)
    simplenn_defaults = {"pad": 0.0, "stride": 1.0, "dilate": 1.0, "opts": []}

    @staticmethod
    def from_simplenn(s: SimpleNNLayer) -> FromSimpleNN:
        return s.filters(("pad", "stride", "dilate", "opts"))

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        pad = w.ints("pad", (1, 4), 0, 0)
        stride = w.ints("stride", (1, 2), 1, 1)
        dilate = w.ints("dilate", (1, 2), 1, 1)
        f = w.param(0)
        if f is None:
            raise w.fail(f"needs a filter parameter (params has {len(layer.params)})")
        if f.ndim > 4 or f.size == 0:
            raise w.fail(f"filter {layer.params[0]!r} has size {dims(f.shape)}; it "
                         "must be a non-empty H x W x C x K array")
        fs = f.shape + (1,) * (4 - f.ndim)
        size = layer.block.get("size")
        if size is not None:
            want = integers(size, (4,), 1)
            if want is None:
                raise w.fail(f"block.size must be 4 positive integers, got {show(size)}")
            if list(fs) != want:
                raise w.fail(f"filter {layer.params[0]!r} has size {dims(fs)} but "
                             f"block.size is {dims(want)}")
        has_bias = layer.block.get("hasBias", len(layer.params) > 1)
        if not isinstance(has_bias, bool):
            raise w.fail(f"block.hasBias must be true or false, got {show(has_bias)}")
        if has_bias:
            b = w.param(1)
            if b is None:
                raise w.fail("block.hasBias is true but params has no bias")
            if b.size != fs[3]:
                raise w.fail(f"bias {layer.params[1]!r} has {b.size} values for "
                             f"{fs[3]} filters")
        x = ins[0]
        if x is None:
            return [None]
        if len(x) == 2:  # MatConvNet treats an N x C matrix as a 1 x 1 map
            x = (*x, 1, 1)
        if len(x) != 4:
            raise w.fail(f"input {layer.inputs[0]!r} has size {dims(x)}; a "
                         "convolution needs H x W x C x N")
        if x[1] % fs[2] or fs[3] % (x[1] // fs[2]):
            raise w.fail(f"filter {layer.params[0]!r} has depth {fs[2]} and {fs[3]} "
                         f"filters, which does not fit the {x[1]} channels of input "
                         f"{layer.inputs[0]!r} (channels = depth x groups, and "
                         "groups must divide the filters)")
        out = []
        for axis, (s, k, d, st) in enumerate(zip(x[2:], fs[:2], dilate, stride,
                                                 strict=True)):
            extent = d * (k - 1) + 1
            padded = s + pad[2 * axis] + pad[2 * axis + 1]
            if padded < extent:
                name = ("height", "width")[axis]
                raise w.fail(f"the filter's {name} {k} (dilate {d}) spans {extent} "
                             f"but input {layer.inputs[0]!r} is {s} + pad "
                             f"{pad[2 * axis]}+{pad[2 * axis + 1]} (input "
                             f"{dims(x)}, N x C x H x W)")
            out.append((padded - extent) // st + 1)
        return [(x[0], fs[3], *out)]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        f = ctx.value(layer, 0, "filter")
        f = f.reshape(f.shape + (1,) * (4 - f.ndim))
        size = layer.block.get("size")
        if size is not None and len(size) == 4 and list(f.shape) != [int(s) for s in size]:
            raise ctx.err(layer, f"filter {layer.params[0]!r} has size {list(f.shape)} but "
                                 f"the layer's block.size is {list(size)}")
        params = {"weight": ctx.param(layer, 0, f.transpose(3, 2, 0, 1))}
        has_bias = layer.block.get("hasBias", len(layer.params) > 1)
        if has_bias:
            bias = ctx.value(layer, 1, "bias")
            if bias.size != f.shape[3]:
                raise ctx.err(layer, f"bias {layer.params[1]!r} has {bias.size} values for "
                                     f"{f.shape[3]} filters")
            params["bias"] = ctx.param(layer, 1, bias.reshape(-1))
        try:
            attrs = {"pad": pad4(layer.block.get("pad")),
                     "stride": pair(layer.block.get("stride"), 1),
                     "dilation": pair(layer.block.get("dilate"), 1), "groups": None}
        except ValueError as exc:
            raise ctx.err(layer, str(exc)) from None
        ctx.add(layer, "conv", attrs, params)
