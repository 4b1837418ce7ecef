"""Data layers: the net's inputs. ``Input`` declares its shapes (``input_param.shape``, or a
legacy header's ``input_shape``/``input_dim``); the other data types read a dataset at run
time, so their tops become graph inputs of unknown shape."""

from __future__ import annotations

from ...limits import INT_MAX
from ..context import Ctx
from ..fields import Shape, Where
from ..net import CaffeLayer
from ..registry import Unit, register

#: Caffe's data layer types (and caffe-reid's ``ReidData``): no bottom, their tops are inputs.
DATA_TYPES = ("Input", "Data", "ImageData", "ReidData", "DummyData", "HDF5Data", "MemoryData",
              "WindowData")


def _graph_inputs(layer: CaffeLayer, ctx: Ctx) -> None:
    for top in ctx.outs(layer):
        ctx.b.inputs.append(top)


@register("Input")
class Input(Unit):
    """``Input``: tops of the declared shapes, batch included (a Reshape may name it)."""

    bottoms, tops = (0, 0), (1, None)
    build = staticmethod(_graph_inputs)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        out: list[Shape | None] = []
        assert w.net is not None
        for top in w.layer.tops:
            declared = w.net.inputs.get(top)
            if declared is None:
                out.append(None)
                continue
            for d in declared:
                if not 1 <= d <= INT_MAX:
                    raise w.field(f"input {top!r} has shape {list(declared)}: every dim "
                                  "must be >= 1 (input_param.shape, or input_shape/"
                                  "input_dim in a legacy header)")
            out.append(tuple(declared))
        return out


@register(*(t for t in DATA_TYPES if t != "Input"))
class Data(Unit):
    """``Data``, ``ImageData``, ``ReidData``...: tops of unknown shape."""

    bottoms, tops = (0, 0), (1, None)
    build = staticmethod(_graph_inputs)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        return [None] * len(w.layer.tops)
