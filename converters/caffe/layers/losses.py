"""Losses and metrics: ``SoftmaxWithLoss``, ``Accuracy`` (semantics in
:mod:`porting.layers.losses`), and caffe-reid's ``Euclidean`` / ``PairEuclidean``
(:mod:`porting.layers.square`)."""

from __future__ import annotations

import math

from ...limits import dims
from ..context import Ctx
from ..fields import Shape, Where, axis_field, int_field, param
from ..net import CaffeLayer
from ..registry import Unit, register


def _labels_fit(w: Where, ins: list[Shape | None], axis: int, section: str) -> None:
    scores, labels = ins
    if scores is None or labels is None:
        return
    a = axis_field(w, f"{section}.axis", axis, len(scores))
    items = math.prod(scores[:a]) * math.prod(scores[a + 1:])
    if math.prod(labels) != items:
        raise w.field(f"label bottom {w.layer.bottoms[1]!r} has {math.prod(labels)} "
                      f"values for {items} predictions of {w.layer.bottoms[0]!r} "
                      f"{dims(scores)}")


@register("SoftmaxWithLoss")
class SoftmaxWithLoss(Unit):
    """Caffe's ``SoftmaxWithLossLayer`` (VALID normalisation) -> op ``softmax_loss``."""

    bottoms = (2, 2)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        _labels_fit(w, ins, int(param(w.layer, "softmax_param").axis), "softmax_param")
        return [()]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        lp = layer.proto.loss_param
        if lp.HasField("ignore_label"):
            raise ctx.err(layer, "loss_param.ignore_label is not supported")
        if lp.HasField("normalization") and int(lp.normalization) not in (1,):  # VALID
            raise ctx.err(layer, "only the VALID loss normalisation (Caffe's default) is "
                                 "supported")
        weight = list(layer.loss_weight) or [1.0]
        ctx.add(layer, "softmax_loss", {"reduction": "mean", "loss_weight": float(weight[0])})


@register("Accuracy")
class Accuracy(Unit):
    """Caffe's ``AccuracyLayer`` (``top_k``, ``axis``) -> graph op ``accuracy``."""

    bottoms = (2, 2)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        p = param(w.layer, "accuracy_param")
        top_k = int_field(w, "accuracy_param.top_k", p.top_k, 1)
        _labels_fit(w, ins, int(p.axis), "accuracy_param")
        scores = ins[0]
        if scores is not None:
            classes = scores[int(p.axis) % len(scores)]
            if top_k > classes:
                raise w.field(f"accuracy_param.top_k {top_k} exceeds the {classes} classes")
        return [()]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        p = param(layer, "accuracy_param")
        if p.HasField("ignore_label"):
            raise ctx.err(layer, "accuracy_param.ignore_label is not supported")
        if len(layer.tops) > 1:
            raise ctx.err(layer, "the per-class accuracy top is not supported")
        ctx.add(layer, "accuracy", {"top_k": int(p.top_k), "axis": int(p.axis)})


@register("Euclidean")
class Euclidean(Unit):
    """caffe-reid: elementwise squared difference of two bottoms -> op ``square_diff``."""

    bottoms = (2, 2)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        a, b = ins
        if a is not None and b is not None and a != b:
            raise w.field(f"bottoms have shapes {dims(a)} and {dims(b)}; they must be equal")
        return [a]

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ctx.add(layer, "square_diff")


@register("PairEuclidean")
class PairEuclidean(Unit):
    """caffe-reid: (first half - second half)^2 of one batch -> op ``pair_split_square``; a
    second top gets the same-identity labels of the pairs (op ``pair_same_label``)."""

    bottoms, tops = (1, 2), (1, 2)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        if len(w.layer.tops) > 1 and len(w.layer.bottoms) < 2:
            raise w.field("the second (label_dif) top needs the label bottom")
        return [None] * len(w.layer.tops)  # batch halves: unknown at batch 1

    @staticmethod
    def build(layer: CaffeLayer, ctx: Ctx) -> None:
        ins = ctx.ins(layer)
        outs = ctx.outs(layer)
        ctx.b.add(layer.name, layer.type, "pair_split_square", ins[:1], outs[:1])
        if len(outs) > 1:
            if len(ins) < 2:
                raise ctx.err(layer, "the label_dif top needs the label bottom")
            ctx.b.add(layer.name + "_labels", layer.type, "pair_same_label", ins[1:2],
                      outs[1:2])
