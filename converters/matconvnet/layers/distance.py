"""``dagnn.PDist`` (MatConvNet beta24+) and SimpleNN ``pdist``: the p-distance of
:mod:`porting.layers.pdist` (``vl_nnpdist``).

``aggregate`` differs between releases: beta23's ``vl_nnpdist`` sums over each image's
positions (``sum(sum(y))``), beta24 over everything (``sum(y(:))``). ``dagnn.PDist`` exists
from beta24 on, so it sums everything; a SimpleNN ``pdist`` is read as beta23 runs it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from porting.layers.pdist import AGGREGATE_ALL, AGGREGATE_IMAGE

from ...limits import finite, show
from ..context import Ctx
from ..fields import Shape, Where
from ..layout import MCNLayer, MCNParam, canon_dict, describe
from ..registry import Unit, register
from ..simplenn_layer import FromSimpleNN, SimpleNNLayer

#: the ``vl_nnpdist`` options a layer may carry (``opts``, or SimpleNN fields)
OPTIONS = ("noRoot", "epsilon", "aggregate")


def _settings(w: Where, simplenn: bool) -> dict[str, Any]:
    """p, noRoot, epsilon and aggregate, with ``opts`` (passed after them, so they win)."""
    block = w.layer.block
    default_eps = 1e-3 if simplenn else 1e-6  # vl_simplenn_tidy's / vl_nnpdist's default
    s: dict[str, Any] = {"p": block.get("p", 2), "noRoot": block.get("noRoot", False),
                         "epsilon": block.get("epsilon", default_eps),
                         "aggregate": block.get("aggregate", not simplenn)}
    opts = block.get("opts") or []
    if not isinstance(opts, list) or len(opts) % 2:
        raise w.fail(f"block.opts must be name/value pairs, got {show(opts)}")
    for name, value in zip(opts[0::2], opts[1::2], strict=True):
        key = next((k for k in OPTIONS if isinstance(name, str) and k.lower() == name.lower()),
                   None)
        if key is None:
            raise w.fail(f"block.opts option {show(name)} is not supported (supported: "
                         f"{', '.join(OPTIONS)}; instance weights come as a third input)")
        s[key] = value
    p = finite(s["p"])
    if p is None or p <= 0:
        raise w.fail(f"p must be a finite number > 0, got {show(s['p'])}")
    if finite(s["epsilon"]) is None:
        raise w.fail(f"epsilon must be a finite number, got {show(s['epsilon'])}")
    for key in ("noRoot", "aggregate"):
        if not isinstance(s[key], bool) and finite(s[key]) is None:
            raise w.fail(f"{key} must be true or false, got {show(s[key])}")
    return s


def _attrs(s: dict[str, Any], per_image: bool) -> dict[str, Any]:
    aggregate = (AGGREGATE_IMAGE if per_image else AGGREGATE_ALL) if s["aggregate"] else None
    return {"p": float(s["p"]), "no_root": bool(s["noRoot"]), "epsilon": float(s["epsilon"]),
            "aggregate": aggregate}


def _out(x: Shape | None, aggregate: bool, per_image: bool) -> Shape | None:
    if x is None or len(x) != 4:
        return None
    if aggregate:
        return (x[0] if per_image else 1, 1, 1, 1)
    return (x[0], 1, x[2], x[3])


@register("dagnn.PDist")
class PDist(Unit):
    """``dagnn.PDist`` (beta24+: ``p``, ``aggregate`` summing everything, ``opts`` noRoot /
    epsilon; inputs x, x0 and optional instance weights) -> graph op ``pdist``."""

    inputs = (2, 3)
    feeds = {1: (1, 1, 1, 1), 2: (1, 1, 1, 1)}  # a target / weights broadcast over x

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        s = _settings(w, simplenn=False)
        return [_out(ins[0], bool(s["aggregate"]), per_image=False)]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        s = _settings(Where(ctx.model, layer), simplenn=False)
        ctx.add(layer, "pdist", _attrs(s, per_image=False))


@register("simplenn.pdist")
class SimpleNNPDist(Unit):
    """SimpleNN ``pdist`` (``p``, ``noRoot``, ``epsilon``, ``aggregate`` per image as in
    beta23, ``instanceWeights``; the target is the layer's ``class``: a second input named
    like ``fromSimpleNN``'s labels unless the file stores one) -> graph op ``pdist``."""

    inputs = (1, 2)
    feeds = {1: (1, 1, 1, 1)}
    simplenn = ("pdist",)  # beta23's aggregate (per image); dagnn.PDist is beta24's
    simplenn_defaults = {"noRoot": False, "aggregate": False, "p": 2.0, "epsilon": 1e-3}

    @staticmethod
    def from_simplenn(s: SimpleNNLayer) -> FromSimpleNN:
        """Its vl_nnpdist settings; a ``class`` (the target) or ``instanceWeights`` stored in
        the file become params ``<name>_class`` / ``<name>_instanceWeights``, else the
        target is a second input, the caller's, as ``fromSimpleNN``'s labels."""
        params = []
        for field, suffix in (("class", "_class"), ("instanceWeights", "_instanceWeights")):
            value = s.element.get(field)
            if value is None or (isinstance(value, np.ndarray) and value.size == 0):
                continue
            if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
                raise s.fail(f"{s.where}.{field} should be a numeric array, got "
                             f"{describe(value)}")
            params.append(MCNParam(s.name + suffix, value.astype(np.float32), 0.0, 0.0))
        block = s.keep("p", "noRoot", "epsilon", "aggregate", "opts")
        stored_target = any(p.name == f"{s.name}_class" for p in params)
        return FromSimpleNN(params, canon_dict(block), label=not stored_target)

    @staticmethod
    def check(w: Where, ins: list[Shape | None]) -> list[Shape | None]:
        s = _settings(w, simplenn=True)
        return [_out(ins[0], bool(s["aggregate"]), per_image=True)]

    @staticmethod
    def build(layer: MCNLayer, ctx: Ctx) -> None:
        s = _settings(Where(ctx.model, layer), simplenn=True)
        params = {}
        for i, slot in enumerate(layer.params):  # params named by from_simplenn: class, weights
            value = ctx.value(layer, i, slot)
            value = value.reshape(value.shape + (1,) * (4 - value.ndim))
            key = "target" if slot.endswith("_class") else "instance_weights"
            params[key] = ctx.param(layer, i, np.ascontiguousarray(value.transpose(3, 2, 0, 1)))
        ctx.add(layer, "pdist", _attrs(s, per_image=True), params)
