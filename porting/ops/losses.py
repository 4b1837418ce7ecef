"""Loss and score ops of the training nets: Caffe ``SoftmaxWithLoss``, ``Accuracy`` and
caffe-reid's ``PairEuclidean``; MatConvNet's ``dagnn.Loss`` (``softmaxlog``,
``classerror``, ``topkerror``)."""

from __future__ import annotations

from porting.layers import class_error, softmax_log_loss, square_diff

from .checks import axis, choice, integer
from .registry import register_op

_OFFSET = {"label_offset": lambda f, v: integer(f, v, -(1 << 30), 1 << 30)}


def _scalar(a, shapes, p):
    return [()]


@register_op("pair_split_square")
def pair_split_square(x, a, p, training):
    """caffe-reid ``PairEuclidean``: the batch's first half minus its second half, squared."""
    n = x[0].shape[0] // 2
    return [square_diff(x[0][:n], x[0][n:])]


@register_op("pair_same_label")
def pair_same_label(x, a, p, training):
    """caffe-reid ``PairEuclidean``'s label top: 1 where the two halves share an identity."""
    n = x[0].shape[0] // 2
    return [(x[0][:n] == x[0][n:]).to(x[0].dtype)]


@register_op("softmax_loss", arity=(2, 2), shape=_scalar,
             attrs={**_OFFSET, "reduction": lambda f, v: choice(f, v, ("mean", "sum", "none"))})
def softmax_loss(x, a, p, training):
    offset = a.get("label_offset", 0)  # MatConvNet labels are 1-based
    return [softmax_log_loss(x[0], x[1] - offset, a.get("reduction", "mean"))]


@register_op("class_error", arity=(2, 2), attrs=_OFFSET, shape=_scalar)
def class_error_(x, a, p, training):
    return [class_error(x[0], x[1] - a.get("label_offset", 0))]


@register_op("accuracy", arity=(2, 3), shape=_scalar,
             attrs={"axis": axis, "top_k": lambda f, v: integer(f, v, 1)})
def accuracy(x, a, p, training):
    """Caffe ``Accuracy``: fraction of items whose label is among the top-k scores."""
    scores = x[0] if x[0].dim() > 1 else x[0][None]
    scores = scores.movedim(a.get("axis", 1), -1).reshape(-1, scores.shape[a.get("axis", 1)])
    label = x[1].reshape(-1).long()
    top = scores.topk(a.get("top_k", 1), dim=1).indices
    return [(top == label[:, None]).any(dim=1).to(scores.dtype).mean()]


@register_op("topk_error", arity=(2, 2), shape=_scalar,
             attrs={**_OFFSET, "topk": lambda f, v: integer(f, v, 1)})
def topk_error(x, a, p, training):
    logits = x[0] if x[0].dim() == 4 else x[0][:, :, None, None]
    n, _, h, w = logits.shape
    label = (x[1].long().reshape(-1) - a.get("label_offset", 0)).view(n, 1, 1, 1)
    top = logits.topk(a.get("topk", 5), dim=1).indices
    hit = (top == label.expand(n, 1, h, w)).any(dim=1)
    return [(~hit).sum().to(logits.dtype)]
