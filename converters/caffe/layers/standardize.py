"""Normalisation layers beyond BatchNorm: BVLC's ``MVN``, SSD's ``Normalize`` and the
Inception-BN (TSN) / PSPNet fork's ``BN``; semantics in :mod:`porting.layers.normalize`
(weiliu89/caffe ssd ``normalize_layer.cpp``, yjxiong/caffe ``bn_layer.cpp``)."""

from __future__ import annotations

from google.protobuf.message import Message

from ...limits import dims
from ..context import Ctx
from ..fields import Shape, Where, finite_field, param
from ..net import CaffeLayer
from ..registry import Unit, register


@register("MVN")
class MVN(Unit):
    """Caffe's ``MVNLayer`` (``normalize_variance``, ``across_channels``, ``eps`` added to the
    standard deviation) -> graph op ``mvn``."""

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        finite_field(w, "mvn_param.eps", param(w.layer, "mvn_param").eps)
        if param(w.layer, "mvn_param").eps < 0:
            raise w.field("mvn_param.eps must be >= 0")
        return [ins[0]]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "mvn_param")
        ctx.add(layer, "mvn", {"normalize_variance": bool(p.normalize_variance),
                               "across_channels": bool(p.across_channels),
                               "eps": float(p.eps)})


@register("Normalize")
class Normalize(Unit):
    """SSD's ``NormalizeLayer`` (``across_spatial``, ``channel_shared``, ``eps``, a scale
    blob) -> graph op ``ssd_normalize``."""

    blobs = 1  # the scale

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        p = param(layer, "norm_param")
        if finite_field(w, "norm_param.eps", p.eps) < 0:
            raise w.field("norm_param.eps must be >= 0")
        x = ins[0]
        if x is not None and len(x) != 4:
            raise w.field(f"bottom {layer.bottoms[0]!r} has shape {dims(x)}, Normalize needs "
                          "N x C x H x W")
        if not layer.blobs:
            raise w.blob("missing blob 0 (scale) in the caffemodel")
        blob = layer.blobs[0]
        if p.channel_shared:
            if blob.size != 1 or blob.ndim > 1:
                raise w.blob(f"blob 0 (scale) has shape {tuple(blob.shape)}, channel_shared "
                             "needs one value")
        else:
            w.expect_blob(0, (x[1] if x is not None else blob.size,), "scale = channels")
        return [x]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "norm_param")
        if not layer.blobs:
            raise ctx.err(layer, "missing blob 0 (scale) in the caffemodel")
        scale = ctx.blob(layer, 0, tuple(layer.blobs[0].shape), "scale")
        ctx.add(layer, "ssd_normalize", {"across_spatial": bool(p.across_spatial),
                                         "eps": float(p.eps)}, {"scale": scale})


_BN_BLOBS = ("scale", "shift", "history mean", "history variance")


def _segnet_style(layer: CaffeLayer) -> bool:
    """SegNet/ENet's ``BN`` (two blobs, ``bn_mode``) rather than the TSN/PSPNet one (four):
    by the fields the prototxt sets, else by the number of blobs."""
    p = param(layer, "bn_param")
    if any(p.HasField(f) for f in ("bn_mode", "scale_filler", "shift_filler")):
        return True
    if any(p.HasField(f) for f in ("slope_filler", "bias_filler", "momentum", "eps", "frozen")):
        return False
    return len(layer.blobs) == 2


@register("BN")
class BN(Unit):
    """The forks' ``BN``. TSN/PSPNet (yjxiong/caffe ``bn_layer.cpp``): blobs scale, shift,
    history mean and variance (``1 x C``), ``scale * (x - mean) / sqrt(var + eps) + shift`` at
    test time or when ``frozen`` -> graph op ``fork_bn`` (batch statistics when training are
    refused). SegNet/ENet (alexgkendall/caffe-segnet ``bn_layer.cpp``): blobs scale and shift
    (``1 x C x 1 x 1``); ``bn_mode: INFERENCE`` is ``scale * x + shift`` -> graph op ``scale``;
    its default LEARN normalises by the batch even at test time and is refused."""

    @staticmethod
    def blob_count(layer: Message) -> int | None:
        return None  # TSN/PSPNet: scale, shift, history mean and variance; SegNet: 2

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        p = param(layer, "bn_param")
        x = ins[0]
        segnet = _segnet_style(layer)
        # both read the bottom through Caffe's legacy num/channels/height/width accessors;
        # the TSN fork keeps the bottom's shape (an InnerProduct's N x C too), SegNet's
        # reshapes its top to 4-D
        if x is not None and (len(x) != 4 if segnet else not 2 <= len(x) <= 4):
            raise w.field(f"bottom {layer.bottoms[0]!r} has shape {dims(x)}, BN needs "
                          + ("N x C x H x W" if segnet else "N x C [x H [x W]]"))
        if segnet and int(p.bn_mode) != 1:
            raise w.field("bn_param.bn_mode LEARN (SegNet's default) normalises with the "
                          "batch's own statistics even at test time; convert the net made for "
                          "inference (bn_mode: INFERENCE, statistics folded into the blobs)")
        if not segnet and finite_field(w, "bn_param.eps", p.eps) < 0:
            raise w.field("bn_param.eps must be >= 0")
        n = 2 if segnet else 4
        if len(layer.blobs) != n:
            what = "scale, shift" if segnet else "scale, shift, history mean, history variance"
            raise w.blob(f"expected {n} blobs ({what}), found {len(layer.blobs)}")
        c = x[1] if x is not None else layer.blobs[0].size
        for i, what in enumerate(_BN_BLOBS[:n]):
            shape = tuple(layer.blobs[i].shape)
            if shape not in ((1, c), (1, c, 1, 1), (c,)):
                raise w.blob(f"blob {i} ({what}) has shape {shape}, expected (1, {c}"
                             f"{', 1, 1' if segnet else ''})")
        return [x]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "bn_param")
        keys = [ctx.blob(layer, i, tuple(layer.blobs[i].shape), what)
                for i, what in enumerate(_BN_BLOBS[:len(layer.blobs)])]
        if _segnet_style(layer):  # (1, C[, 1, 1]) blobs broadcast from axis 0, (C,) from 1
            axis = 1 if layer.blobs[0].ndim == 1 else 0
            ctx.add(layer, "scale", {"axis": axis}, {"weight": keys[0], "bias": keys[1]})
            return
        params = dict(zip(("scale", "shift", "mean", "variance"), keys, strict=True))
        ctx.add(layer, "fork_bn", {"eps": float(p.eps), "frozen": bool(p.frozen)}, params)
