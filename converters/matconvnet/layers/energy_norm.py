"""``dagnn.NormOffset`` / SimpleNN ``noffset`` (:mod:`porting.layers.norm_offset`:
``x - param(1) * max(sum_c x^2, 1e-8) ^ param(2)``) and ``dagnn.SpatialNorm`` / SimpleNN
``spnorm`` (:mod:`porting.layers.spatial_norm`: ``x (1 + alpha mean_window x^2) ^ -beta``)."""

from __future__ import annotations

from ...limits import finite, integer, show
from ..context import Ctx
from ..fields import Shape, Where
from ..layout import MCNLayer, canon_dict
from ..registry import Unit, register
from ..simplenn_layer import FromSimpleNN, SimpleNNLayer


def _param(w: Where, n: int, default: list[float]) -> list[float]:
    value = w.layer.block.get("param", default)
    items = value if isinstance(value, list) else [value]
    numbers = [finite(v) for v in items]
    if len(numbers) != n or any(v is None for v in numbers):
        raise w.fail(f"block.param must be {n} finite numbers, got {show(value)}")
    return [float(v) for v in numbers]


def _from_simplenn(s: SimpleNNLayer) -> FromSimpleNN:
    """``noffset``/``spnorm``: ``vl_simplenn`` passes ``l.param``, which has no default."""
    if "param" not in s.settings:
        raise s.fail(f"{s.where}: {s.kind} layer without field 'param'")
    return FromSimpleNN([], canon_dict({"param": s.settings["param"]}))


@register("dagnn.NormOffset")
class NormOffset(Unit):
    """``dagnn.NormOffset`` (``param = [k p]``, default ``[1 0.5]``) -> graph op ``noffset``."""

    simplenn = ("noffset",)  # vl_nnnoffset(x, l.param), as the dagnn class runs it
    from_simplenn = staticmethod(_from_simplenn)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        _param(w, 2, [1.0, 0.5])
        return [ins[0]]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        ctx.add(layer, "noffset", {"param": [float(v) for v in
                                             layer.block.get("param", [1.0, 0.5])]})


@register("dagnn.SpatialNorm")
class SpatialNorm(Unit):
    """``dagnn.SpatialNorm`` (``param = [PH PW alpha beta]``, default ``[2 2 10 2]``) ->
    graph op ``spnorm``."""

    simplenn = ("spnorm",)  # vl_nnspnorm(x, l.param)
    from_simplenn = staticmethod(_from_simplenn)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        ph, pw, _, _ = _param(w, 4, [2.0, 2.0, 10.0, 2.0])
        if integer(ph, 1) is None or integer(pw, 1) is None:
            raise w.fail(f"block.param's window [PH PW] must be positive integers, got "
                         f"{show([ph, pw])}")
        return [ins[0]]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        ctx.add(layer, "spnorm", {"param": [float(v) for v in
                                            layer.block.get("param", [2.0, 2.0, 10.0, 2.0])]})
