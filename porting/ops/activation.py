"""Element-wise activation ops: ``relu`` (also leaky), ``sigmoid``, ``tanh``, ``power``
(Caffe ``Power``: ``(shift + scale x)^power``) and ``dropout``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .checks import number
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
    y = a.get("shift", 0.0) + a.get("scale", 1.0) * x[0]
    pw = a.get("power", 1.0)
    return [y if pw == 1 else y * y if pw == 2 else torch.pow(y, pw)]


@register_op("dropout", attrs={"rate": lambda f, v: number(f, v, 0.0, 1.0)})
def dropout(x, a, p, training):
    return [F.dropout(x[0], a.get("rate", 0.5), training)]
