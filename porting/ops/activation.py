"""Element-wise activation ops: ``relu`` (also leaky), ``sigmoid``, ``tanh``, ``power``
(Caffe ``Power``: ``(shift + scale x)^power``), ``dropout``, and Caffe's ``prelu``, ``elu``,
``absval``, ``bnll``, ``caffe_exp``, ``caffe_log``, ``threshold``
(:mod:`porting.layers.activations`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from porting.layers import activations as act

from .checks import FieldError, number
from .registry import register_op


@register_op("relu", attrs={"negative_slope": number}, inplace=True)
def relu(x, a, p, training):
    slope = a.get("negative_slope", 0.0)
    if slope == 0 and a.get("_inplace"):
        return [F.relu_(x[0])]
    return [F.relu(x[0]) if slope == 0 else F.leaky_relu(x[0], slope)]


register_op("sigmoid")(lambda x, a, p, t: [torch.sigmoid(x[0])])
register_op("tanh")(lambda x, a, p, t: [torch.tanh(x[0])])


@register_op("power", attrs={"shift": number, "scale": number, "power": number})
def power(x, a, p, training):
    return [act.caffe_power(x[0], a.get("power", 1.0), a.get("scale", 1.0), a.get("shift", 0.0))]


@register_op("dropout", attrs={"rate": lambda f, v: number(f, v, 0.0, 1.0)})
def dropout(x, a, p, training):
    return [F.dropout(x[0], a.get("rate", 0.5), training)]


def _prelu_check(where, layer, p):
    if p["weight"].numel() < 1:
        raise FieldError(f"{where}.params.weight", "no slope")


@register_op("prelu", slots={"weight": (True, (0, 1))}, check=_prelu_check)
def prelu(x, a, p, training):
    """Caffe ``PReLU``: one slope per channel, or one for all (``channel_shared``)."""
    return [act.prelu(x[0], p["weight"])]


def _base(field, v):
    number(field, v)
    if v != -1 and v <= 0:
        raise FieldError(field, f"expected -1 (e) or a number > 0, got {v}")


_EXP_ATTRS = {"base": _base, "scale": number, "shift": number}
register_op("elu", attrs={"alpha": number})(
    lambda x, a, p, t: [act.elu(x[0], a.get("alpha", 1.0))])
register_op("absval")(lambda x, a, p, t: [act.absval(x[0])])
register_op("bnll")(lambda x, a, p, t: [act.bnll(x[0])])
register_op("caffe_exp", attrs=_EXP_ATTRS)(
    lambda x, a, p, t: [act.caffe_exp(x[0], a.get("base", -1.0), a.get("scale", 1.0),
                                      a.get("shift", 0.0))])
register_op("caffe_log", attrs=_EXP_ATTRS)(
    lambda x, a, p, t: [act.caffe_log(x[0], a.get("base", -1.0), a.get("scale", 1.0),
                                      a.get("shift", 0.0))])
register_op("threshold", attrs={"threshold": number})(
    lambda x, a, p, t: [act.threshold(x[0], a.get("threshold", 0.0))])
