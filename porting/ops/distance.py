"""``pdist``: MatConvNet's p-distance between feature maps (``vl_nnpdist``: SimpleNN ``pdist``,
``dagnn.PDist``).

Inputs: the features, then the target ``x0`` unless it is the ``target`` parameter (a SimpleNN
layer's stored ``class``), then the instance weights unless they are the
``instance_weights`` parameter (a SimpleNN layer's ``instanceWeights`` field).
"""

from __future__ import annotations

from porting.layers.pdist import AGGREGATE_ALL, AGGREGATE_IMAGE, pdist

from .checks import FieldError, boolean, choice, number
from .registry import register_op


def _check(where, layer, p):
    args = len(layer["inputs"]) + ("target" in p) + ("instance_weights" in p)
    if not 2 <= args <= 3:
        raise FieldError(f"{where}.inputs", "pdist takes the features, a target and optional "
                         f"instance weights (inputs and parameters together), got {args}")


def _shape(a, shapes, p):
    if a.get("aggregate") is not None:
        return [(1, 1, 1)]
    c, h, w = (tuple(shapes[0]) + (1, 1))[:3]
    return [(1, h, w)]


@register_op("pdist", arity=(1, 3), required=("p",),
             attrs={"p": lambda f, v: number(f, v, 1e-12),
                    "no_root": boolean,
                    "epsilon": number,  # vl_nnpdist reads it only in the backward pass
                    "aggregate": lambda f, v: v is None or choice(
                        f, v, (AGGREGATE_IMAGE, AGGREGATE_ALL))},
             slots={"target": (False, (1, 2, 3, 4)), "instance_weights": (False, (1, 2, 3, 4))},
             check=_check, shape=_shape, fresh=True)
def pdist_op(x, a, p, training):
    inputs = list(x[1:])
    x0 = p["target"] if "target" in p else inputs.pop(0)
    weights = p.get("instance_weights")
    if weights is None and inputs:
        weights = inputs.pop(0)
    return [pdist(x[0], x0, a["p"], a.get("no_root", False), a.get("aggregate"), weights)]
