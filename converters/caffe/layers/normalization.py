"""``LRN``, ``BatchNorm``, ``Scale`` and ``Bias``: semantics in :mod:`porting.layers.lrn`
(alpha divided by the window) and :mod:`porting.layers.batchnorm` (the stored moving-average
scale factor, ``use_global_stats`` following the phase)."""

from __future__ import annotations

from google.protobuf.message import Message

from ...limits import dims
from ..context import Ctx
from ..fields import Shape, Where, axis_field, finite_field, int_field, param
from ..net import CaffeLayer
from ..registry import Unit, register


@register("LRN")
class LRN(Unit):
    """Caffe's ``LRNLayer`` (ACROSS_CHANNELS, WITHIN_CHANNEL) -> graph op ``caffe_lrn``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        p = param(w.layer, "lrn_param")
        size = int_field(w, "lrn_param.local_size", p.local_size, 1)
        if size % 2 == 0:
            raise w.field(f"lrn_param.local_size must be odd, got {size}")
        for name in ("alpha", "beta", "k"):
            finite_field(w, f"lrn_param.{name}", getattr(p, name))
        x = ins[0]
        if x is not None and len(x) != 4:
            raise w.field(f"bottom {w.layer.bottoms[0]!r} has shape {dims(x)}, LRN needs "
                          "N x C x H x W")
        return [x]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "lrn_param")
        region = "ACROSS_CHANNELS" if int(p.norm_region) == 0 else "WITHIN_CHANNEL"
        if int(p.local_size) % 2 == 0:
            raise ctx.err(layer, f"LRN local_size must be odd, got {p.local_size}")
        ctx.add(layer, "caffe_lrn", {"local_size": int(p.local_size),
                                     "alpha": float(p.alpha), "beta": float(p.beta),
                                     "k": float(p.k), "norm_region": region})


@register("BatchNorm")
class BatchNorm(Unit):
    """Caffe's ``BatchNormLayer`` (mean, variance, scale factor blobs) -> op ``caffe_bn``."""

    blobs = 3  # mean, variance, moving-average scale factor

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        p = param(layer, "batch_norm_param")
        finite_field(w, "batch_norm_param.eps", p.eps, positive=True)
        finite_field(w, "batch_norm_param.moving_average_fraction", p.moving_average_fraction)
        if len(layer.blobs) != 3:
            raise w.blob(f"expected 3 blobs (mean, variance, scale factor), found "
                         f"{len(layer.blobs)}")
        x = ins[0]
        c = x[1] if x is not None and len(x) > 1 else layer.blobs[0].size
        w.expect_blob(0, (c,), "mean = channels")
        w.expect_blob(1, (c,), "variance = channels")
        w.expect_blob(2, (1,), "moving-average scale factor")
        return [x]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "batch_norm_param")
        if len(layer.blobs) < 3:
            raise ctx.err(layer, f"expected 3 blobs (mean, variance, scale factor), found "
                                 f"{len(layer.blobs)}")
        c = layer.blobs[0].size
        params = {"mean": ctx.blob(layer, 0, (c,), "mean"),
                  "variance": ctx.blob(layer, 1, (c,), "variance"),
                  "scale_factor": ctx.blob(layer, 2, (1,), "scale factor")}
        use_global = bool(p.use_global_stats) if p.HasField("use_global_stats") else (
            ctx.phase == "TEST")
        ctx.add(layer, "caffe_bn", {"eps": float(p.eps), "use_global_stats": use_global,
                                    "moving_average_fraction":
                                        float(p.moving_average_fraction)}, params)


def _scale_like(w: Where, ins: list[Shape | None], section: str) -> Shape | None:
    """Scale/Bias: the shape the scale/bias must have (from the bottom), checked."""
    layer = w.layer
    p = param(layer, section)
    x = ins[0]
    num_axes = int(p.num_axes)
    if num_axes < -1:
        raise w.field(f"{section}.num_axes must be >= -1, got {num_axes}")
    if x is None:
        return None
    axis = axis_field(w, f"{section}.axis", int(p.axis), max(len(x), 1))
    end = len(x) if num_axes == -1 else axis + num_axes
    if end > len(x):
        raise w.field(f"{section}: axis {axis} + num_axes {num_axes} exceed the "
                      f"{len(x)}-D bottom")
    want = tuple(x[axis:end])
    if len(ins) > 1 and ins[1] is not None and tuple(ins[1]) != tuple(x[axis:axis + len(
            ins[1])]):
        raise w.field(f"bottom {layer.bottoms[1]!r} has shape {dims(ins[1])}, which does "
                      f"not fit bottom {layer.bottoms[0]!r} {dims(x)} at axis {axis}")
    return want


@register("Scale")
class Scale(Unit):
    """Caffe's ``ScaleLayer`` (a blob or a second bottom; optional bias) -> op ``scale``."""

    bottoms = (1, 2)

    @staticmethod
    def blob_count(layer: Message) -> int | None:
        # with a second bottom the scale is an input, not a blob
        return int(len(layer.bottom) == 1) + int(layer.scale_param.bias_term)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        p = param(layer, "scale_param")
        want = _scale_like(w, ins, "scale_param")
        i = 0
        if len(layer.bottoms) == 1:
            if not layer.blobs:
                raise w.blob("missing blob 0 (scale) in the caffemodel")
            if want is not None:
                w.expect_blob(0, want, "scale")
            i = 1
        if p.bias_term:
            if i >= len(layer.blobs):
                raise w.blob(f"missing blob {i} (bias) in the caffemodel")
            if want is not None:
                w.expect_blob(i, want, "bias")
            elif i and layer.blobs[i].shape != layer.blobs[0].shape:
                raise w.blob(f"blob {i} (bias) has shape {tuple(layer.blobs[i].shape)} but "
                             f"the scale has {tuple(layer.blobs[0].shape)}")
        return [ins[0]]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "scale_param")
        params: dict[str, str] = {}
        i = 0
        if len(layer.bottoms) == 1:
            if not layer.blobs:
                raise ctx.err(layer, "missing blob 0 (scale) in the caffemodel")
            shape = tuple(layer.blobs[0].shape)
            params["weight"] = ctx.blob(layer, 0, shape, "scale")
            i = 1
        if p.bias_term:
            if i >= len(layer.blobs):
                raise ctx.err(layer, f"missing blob {i} (bias) in the caffemodel")
            params["bias"] = ctx.blob(layer, i, tuple(layer.blobs[i].shape), "bias")
        ctx.add(layer, "scale", {"axis": int(p.axis)}, params)


@register("Bias")
class Bias(Unit):
    """Caffe's ``BiasLayer`` (a blob or a second bottom) -> graph op ``bias``."""

    bottoms = (1, 2)

    @staticmethod
    def blob_count(layer: Message) -> int | None:
        return int(len(layer.bottom) == 1)  # with a second bottom the bias is an input

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        want = _scale_like(w, ins, "bias_param")
        if len(layer.bottoms) == 1:
            if not layer.blobs:
                raise w.blob("missing blob 0 (bias) in the caffemodel")
            if want is not None:
                w.expect_blob(0, want, "bias")
        return [ins[0]]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "bias_param")
        params = {}
        if len(layer.bottoms) == 1:
            params["bias"] = ctx.blob(layer, 0, tuple(layer.blobs[0].shape), "bias")
        ctx.add(layer, "bias", {"axis": int(p.axis)}, params)
