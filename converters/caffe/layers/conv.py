"""``Convolution`` and ``InnerProduct``: semantics in :mod:`porting.layers.conv` (Caffe's
im2col arithmetic) and :mod:`porting.layers.inner_product` (the C,H,W-flattened blob)."""

from __future__ import annotations

import math

from google.protobuf.message import Message

from porting.checkpoint_schema import MAX_SIDE  # what a checkpoint may hold

from ...limits import dims
from ..context import Ctx
from ..fields import Geometry, Shape, Where, axis_field, hw, int_field, param
from ..net import CaffeLayer
from ..registry import Unit, register


def conv_blobs(layer: Message) -> int:
    """The blobs of a ``convolution_param`` layer: filters, and a bias unless
    ``bias_term: false``."""
    return 1 + int(layer.convolution_param.bias_term)


def conv_geometry(layer: CaffeLayer, prototxt: str = "<prototxt>") -> Geometry:
    """The checked geometry of a Convolution layer."""
    w = Where(layer, prototxt, None)
    p = param(layer, "convolution_param")
    kernel = hw(w, p, "convolution_param", "kernel", None, 1)
    if kernel is None:
        raise w.field("convolution_param has no kernel size (kernel_size or kernel_h/kernel_w)")
    pad = hw(w, p, "convolution_param", "pad", 0, 0)
    stride = hw(w, p, "convolution_param", "stride", 1, 1)
    dil = [int_field(w, "convolution_param.dilation", d, 1, MAX_SIDE)
           for d in p.dilation] or [1]
    if len(dil) > 2:
        raise w.field(f"convolution_param.dilation: only 2-D dilation is supported, got {dil}")
    return Geometry(kernel, pad, stride, (dil[0], dil[-1]))  # type: ignore[arg-type]


def checked_conv_param(w: Where) -> tuple[Message, Geometry, int, int]:
    """``convolution_param`` as Caffe's ``BaseConvolutionLayer::LayerSetUp`` checks it (for
    Convolution and Deconvolution alike): its geometry, axis 1, and ``num_output`` set and a
    multiple of ``group``. Returns the message, the geometry, ``num_output`` and ``group``."""
    p = param(w.layer, "convolution_param")
    g = conv_geometry(w.layer, w.prototxt)
    if p.axis != 1:
        raise w.field("convolution_param.axis: only axis 1 (NCHW) is supported")
    if not p.HasField("num_output"):
        raise w.field("convolution_param.num_output is not set")
    n = int_field(w, "convolution_param.num_output", p.num_output, 1)
    group = int_field(w, "convolution_param.group", p.group, 1)
    if n % group:
        raise w.field(f"convolution_param.num_output ({n}) is not a multiple of group "
                      f"({group})")
    return p, g, n, group


def need_nchw(w: Where, x: Shape | None) -> None:
    """A convolution's bottom is N x C x H x W (when its shape is known)."""
    if x is not None and len(x) != 4:
        raise w.field(f"bottom {w.layer.bottoms[0]!r} has shape {dims(x)}, {w.layer.type} "
                      "needs N x C x H x W")


@register("Convolution")
class Convolution(Unit):
    """Caffe's ``ConvolutionLayer`` (2-D, NCHW, groups, dilation) -> graph op ``conv``."""

    blob_count = staticmethod(conv_blobs)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        p, g, n, group = checked_conv_param(w)
        x = ins[0]
        need_nchw(w, x)
        if not layer.blobs:
            raise w.blob("missing blob 0 (weights) in the caffemodel")
        blob = layer.blobs[0]
        if x is not None:
            if x[1] % group:
                raise w.field(f"convolution_param.group ({group}) does not divide the "
                              f"{x[1]} channels of bottom {layer.bottoms[0]!r}")
            cin = x[1] // group
        elif blob.ndim == 4:
            cin = blob.shape[1]
        else:
            cin = -1
        weight = (n, cin, *g.kernel)
        bias = (n,)
        w.expect_blob(0, weight, "weights = num_output x channels/group x kernel_h x "
                      "kernel_w", (1, bias, "bias") if p.bias_term else None)
        if p.bias_term:
            w.expect_blob(1, bias, "bias = num_output")
        if x is None:
            return [None]
        size = []
        for axis, (s, k, q, st, d) in enumerate(zip(x[2:], g.kernel, g.pad, g.stride,
                                                    g.dilation, strict=True)):
            extent = d * (k - 1) + 1
            if s + 2 * q < extent:
                name = "hw"[axis]
                raise w.field(f"kernel_{name} {k} (dilation {d}) spans {extent} but the "
                              f"bottom is {s} + 2 x pad {q} along {name} (input {dims(x)})")
            size.append((s + 2 * q - extent) // st + 1)
        return [(x[0], n, *size)]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "convolution_param")
        g = conv_geometry(layer, ctx.source)
        (kh, kw), (ph, pw), (sh, sw), (dh, dw) = g.kernel, g.pad, g.stride, g.dilation
        group, n = int(p.group), int(p.num_output)
        cin = layer.blobs[0].shape[-3]
        params = {"weight": ctx.blob(layer, 0, (n, cin, kh, kw), "weights")}
        if p.bias_term:
            params["bias"] = ctx.blob(layer, 1, (n,), "bias")
        ctx.add(layer, "conv", {"pad": [ph, ph, pw, pw], "stride": [sh, sw],
                                "dilation": [dh, dw], "groups": group}, params)


@register("InnerProduct")
class InnerProduct(Unit):
    """Caffe's ``InnerProductLayer`` (``axis``, ``transpose``) -> graph op ``linear``."""

    @staticmethod
    def blob_count(layer: Message) -> int | None:
        return 1 + int(layer.inner_product_param.bias_term)  # weights, bias

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        p = param(layer, "inner_product_param")
        if not p.HasField("num_output"):
            raise w.field("inner_product_param.num_output is not set")
        n = int_field(w, "inner_product_param.num_output", p.num_output, 1)
        if not layer.blobs:
            raise w.blob("missing blob 0 (weights) in the caffemodel")
        x = ins[0]
        if x is not None:
            axis = axis_field(w, "inner_product_param.axis", int(p.axis), len(x))
            k = math.prod(x[axis:])
        else:
            axis, k = None, layer.blobs[0].size // n
            if layer.blobs[0].size != n * k:
                raise w.blob(f"blob 0 (weights) has {layer.blobs[0].size} values, not a "
                             f"multiple of num_output {n}")
        shape = (k, n) if p.transpose else (n, k)
        w.expect_blob(0, shape, "weights", (1, (n,), "bias") if p.bias_term else None)
        if p.bias_term:
            w.expect_blob(1, (n,), "bias = num_output")
        return [None if x is None else (*x[:axis], n)]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "inner_product_param")
        n = int(p.num_output)
        if not layer.blobs:
            raise ctx.err(layer, "missing blob 0 (weights) in the caffemodel")
        k = layer.blobs[0].size // max(n, 1)
        shape = (k, n) if p.transpose else (n, k)
        w = ctx.blob(layer, 0, shape, "weights")
        if p.transpose:
            ctx.b.params[w] = ctx.b.params[w].t().contiguous()
        params = {"weight": w}
        if p.bias_term:
            params["bias"] = ctx.blob(layer, 1, (n,), "bias")
        ctx.add(layer, "linear", {"axis": int(p.axis)}, params)
