"""``dagnn.Loss`` (``vl_nnloss``; SimpleNN ``softmaxloss``): semantics in
:mod:`porting.layers.losses` (softmaxlog summed over images and positions, 1-based labels)."""

from __future__ import annotations

from typing import Any

from ...limits import integer, show
from ..context import Ctx
from ..fields import Shape, Where
from ..layout import MCNLayer
from ..registry import Unit, register
from ..simplenn_layer import FromSimpleNN, SimpleNNLayer

#: ``block.loss`` -> graph op.
LOSSES = {"softmaxlog": "softmax_loss", "classerror": "class_error", "topkerror": "topk_error"}
LOSS_KINDS = tuple(LOSSES)


@register("dagnn.Loss")
class Loss(Unit):
    """``dagnn.Loss`` (``loss`` softmaxlog/classerror/topkerror, ``opts`` topK) -> graph ops
    ``softmax_loss``/``class_error``/``topk_error``."""

    inputs = (2, 2)
    simplenn = ("softmaxloss",)

    @staticmethod
    def from_simplenn(s: SimpleNNLayer) -> FromSimpleNN:
        # vl_simplenn reads the layer's ``class``: the caller's labels
        return FromSimpleNN([], {"loss": "softmaxlog"}, label=True)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        layer = w.layer
        kind = layer.block.get("loss", "softmaxlog")
        if not isinstance(kind, str) or kind not in LOSS_KINDS:
            raise w.fail(f"block.loss {show(kind)} is not supported; supported: "
                         f"{', '.join(LOSS_KINDS)}")
        opts = layer.block.get("opts") or []
        if kind == "topkerror" and isinstance(opts, list) and "topK" in opts:
            i = opts.index("topK")
            if i + 1 >= len(opts) or integer(opts[i + 1], 1) is None:
                raise w.fail("block.opts 'topK' must be followed by a positive integer")
        return [()]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        kind = layer.block.get("loss", "softmaxlog")
        if kind not in LOSSES:
            raise ctx.err(layer, f"loss {kind!r} is not supported; supported: "
                                 f"{sorted(LOSSES)}")
        if len(layer.inputs) != 2:
            raise ctx.err(layer, "a Loss takes a prediction and a label (instance weights "
                                 "are not supported)")
        attrs: dict[str, Any] = {"label_offset": 1}  # MatConvNet labels are 1-based
        if kind == "softmaxlog":
            attrs["reduction"] = "sum"  # vl_nnloss sums over images and positions
        if kind == "topkerror":
            opts = layer.block.get("opts") or []
            attrs["topk"] = int(opts[opts.index("topK") + 1]) if "topK" in opts else 5
        ctx.add(layer, LOSSES[kind], attrs)
