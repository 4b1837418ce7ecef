"""``Deconvolution`` and the forks' depthwise convolutions: semantics in
:mod:`porting.layers.deconv` (the transposed convolution) and the grouped convolution of
:mod:`porting.layers.conv`.

* ``ConvolutionDepthwise`` (the MobileNet/ShuffleNet forks, e.g. soccergame/caffe-windows
  ``conv_dw_layer.cpp``): one ``kh x kw`` filter per channel, C outputs, weight
  ``(C, 1, kh, kw)``; ``num_output`` and ``group`` are not read (a different ``num_output``
  is refused here, since OpenCV and the fork would then disagree);
* ``DepthwiseConvolution`` (yonghenglh6/DepthwiseConvolution ``depthwise_conv_layer.cpp``):
  Caffe's ``Convolution`` with its own kernel, fields and blobs.
"""

from __future__ import annotations

from porting.layers.deconv import deconv_output_size

from ...limits import dims
from ..context import Ctx
from ..fields import Shape, Where, param
from ..net import CaffeLayer
from ..registry import Unit, register
from .conv import Convolution, checked_conv_param, conv_blobs, conv_geometry, need_nchw


@register("Deconvolution")
class Deconvolution(Unit):
    """Caffe's ``DeconvolutionLayer`` (groups, dilation, pad, stride, bias) -> op ``deconv``."""

    blob_count = staticmethod(conv_blobs)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        p, g, n, group = checked_conv_param(w)
        x = ins[0]
        need_nchw(w, x)
        if not layer.blobs:
            raise w.blob("missing blob 0 (weights) in the caffemodel")
        cin = x[1] if x is not None else layer.blobs[0].shape[0]
        if cin % group:
            raise w.field(f"convolution_param.group ({group}) does not divide the {cin} "
                          f"channels of bottom {layer.bottoms[0]!r}")
        w.expect_blob(0, (cin, n // group, *g.kernel), "weights = channels x num_output/group "
                      "x kernel_h x kernel_w", (1, (n,), "bias") if p.bias_term else None)
        if p.bias_term:
            w.expect_blob(1, (n,), "bias = num_output")
        if x is None:
            return [None]
        size = [deconv_output_size(s, k, st, q, d) for s, k, st, q, d in
                zip(x[2:], g.kernel, g.stride, g.pad, g.dilation, strict=True)]
        if min(size) < 1:
            raise w.field(f"the top would be {size[0]}x{size[1]} (pad {list(g.pad)} too large "
                          f"for the bottom {dims(x)})")
        return [(x[0], n, *size)]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "convolution_param")
        g = conv_geometry(layer, ctx.source)
        n, group = int(p.num_output), int(p.group)
        cin = layer.blobs[0].shape[0] if layer.blobs else 0
        params = {"weight": ctx.blob(layer, 0, (cin, n // group, *g.kernel), "weights")}
        if p.bias_term:
            params["bias"] = ctx.blob(layer, 1, (n,), "bias")
        ctx.add(layer, "deconv", {"pad": list(g.pad), "stride": list(g.stride),
                                  "dilation": list(g.dilation), "groups": group}, params)


@register("ConvolutionDepthwise")
class ConvolutionDepthwise(Unit):
    """The forks' ``ConvolutionDepthwiseLayer`` -> graph op ``conv`` with group = C."""

    blob_count = staticmethod(conv_blobs)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        p = param(layer, "convolution_param")
        g = conv_geometry(layer, w.prototxt)
        x = ins[0]
        need_nchw(w, x)
        if not layer.blobs:
            raise w.blob("missing blob 0 (weights) in the caffemodel")
        c = x[1] if x is not None else layer.blobs[0].shape[0]
        if p.HasField("num_output") and int(p.num_output) != c:
            raise w.field(f"convolution_param.num_output ({p.num_output}) differs from the "
                          f"{c} channels: ConvolutionDepthwise makes one output per channel")
        w.expect_blob(0, (c, 1, *g.kernel), "weights = channels x 1 x kernel_h x kernel_w",
                      (1, (c,), "bias") if p.bias_term else None)
        if p.bias_term:
            w.expect_blob(1, (c,), "bias = channels")
        if x is None:
            return [None]
        size = []
        for s, k, q, st, d in zip(x[2:], g.kernel, g.pad, g.stride, g.dilation, strict=True):
            extent = d * (k - 1) + 1
            if s + 2 * q < extent:
                raise w.field(f"the kernel spans {extent} but the bottom is {s} + 2 x pad {q} "
                              f"(input {dims(x)})")
            size.append((s + 2 * q - extent) // st + 1)
        return [(x[0], c, *size)]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "convolution_param")
        g = conv_geometry(layer, ctx.source)
        c = layer.blobs[0].shape[0] if layer.blobs else 0
        (ph, pw), (dh, dw) = g.pad, g.dilation
        params = {"weight": ctx.blob(layer, 0, (c, 1, *g.kernel), "weights")}
        if p.bias_term:
            params["bias"] = ctx.blob(layer, 1, (c,), "bias")
        ctx.add(layer, "conv", {"pad": [ph, ph, pw, pw], "stride": list(g.stride),
                                "dilation": [dh, dw], "groups": c}, params)


@register("DepthwiseConvolution")
class DepthwiseConvolution(Convolution):
    """yonghenglh6's ``DepthwiseConvolutionLayer``: Caffe's ``Convolution`` (its group is
    the channel count in the nets that use it) -> graph op ``conv``."""
