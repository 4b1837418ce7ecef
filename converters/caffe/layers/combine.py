"""SENet's ``Axpy`` and BVLC's ``Embed``: semantics in :mod:`porting.layers.axpy`
(hujie-frank/SENet ``axpy_layer.cpp``: ``a[n, c] * x + y``) and :mod:`porting.layers.embed`
(a row of the weight per integer index)."""

from __future__ import annotations

from google.protobuf.message import Message

from ...limits import dims
from ..context import Ctx
from ..fields import Shape, Where, int_field, param
from ..net import CaffeLayer
from ..registry import Unit, register


@register("Axpy")
class Axpy(Unit):
    """SENet's ``AxpyLayer``: bottoms ``a`` (N x C [x 1 x 1]), ``x``, ``y`` -> op ``axpy``."""

    bottoms = (3, 3)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        a, x, y = ins
        names = w.layer.bottoms
        if x is not None and y is not None and x != y:
            raise w.field(f"bottoms {names[1]!r} {dims(x)} and {names[2]!r} {dims(y)} differ")
        if a is not None and x is not None and (
                tuple(a[:2]) != tuple(x[:2]) or any(d != 1 for d in a[2:])):
            raise w.field(f"bottom {names[0]!r} {dims(a)} is not N x C x 1 x 1 of "
                          f"{names[1]!r} {dims(x)}")
        return [x if x is not None else y]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "axpy")


@register("Embed")
class Embed(Unit):
    """Caffe's ``EmbedLayer`` (``input_dim`` x ``num_output`` weight, optional bias) -> op
    ``embed``; the top is the bottom's shape plus ``num_output``."""

    @staticmethod
    def blob_count(layer: Message) -> int | None:
        return 1 + int(layer.embed_param.bias_term)  # weights, bias

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        p = param(w.layer, "embed_param")
        n = int_field(w, "embed_param.num_output", p.num_output, 1)
        k = int_field(w, "embed_param.input_dim", p.input_dim, 1)
        w.expect_blob(0, (k, n), "weights = input_dim x num_output",
                      (1, (n,), "bias") if p.bias_term else None)
        if p.bias_term:
            w.expect_blob(1, (n,), "bias = num_output")
        x = ins[0]
        return [None if x is None else (*x, n)]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "embed_param")
        n, k = int(p.num_output), int(p.input_dim)
        params = {"weight": ctx.blob(layer, 0, (k, n), "weights")}
        if p.bias_term:
            params["bias"] = ctx.blob(layer, 1, (n,), "bias")
        ctx.add(layer, "embed", {}, params)
