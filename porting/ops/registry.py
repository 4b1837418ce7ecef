"""The op registry: one :class:`Op` per graph op, holding its forward and its schema.

A converted graph names an ``op`` per layer (``conv``, ``caffe_pool``...). Everything the
runner and the checkpoint schema need to know about an op is registered with it, in one
place: the function that computes it, how many inputs it takes, its attributes' checks, its
parameter slots, the shape rule of the memory estimate, and its fast-path properties.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

Params = Mapping[str, torch.Tensor]
OpFn = Callable[[list[torch.Tensor], dict[str, Any], Params, bool], list[torch.Tensor]]
AttrCheck = Callable[[str, Any], None]
#: ``check(where, layer, params)``: cross-field checks of one graph layer (its dict, and its
#: params as slot -> tensor).
LayerCheck = Callable[[str, dict[str, Any], Mapping[str, torch.Tensor]], None]
Shape = tuple[int, ...]
#: ``shape(attrs, input shapes without batch, params)``: output shapes, or None when unknown.
ShapeRule = Callable[[dict[str, Any], list[Shape], Mapping[str, torch.Tensor | None]],
                     list[Shape] | None]
#: ``factory(attrs)``: the layer as an ``nn.Module`` (export swaps in its export form).
ModuleFactory = Callable[[dict[str, Any]], nn.Module]


class GraphError(ValueError):
    """A graph that cannot run: unknown op, missing variable or parameter, bad shapes."""


@dataclass(frozen=True)
class Op:
    """A graph op: its forward and its schema.

    ``slots`` maps a parameter slot to (required, allowed ranks); ``stats`` are the slots
    that hold running statistics rather than trained weights. ``inplace``: with the fast
    path it may overwrite its first input when nothing else reads it; ``fresh``: its output
    is a new tensor that nothing else aliases.
    """

    name: str
    fn: OpFn
    arity: tuple[int, int | None] = (1, 1)
    attrs: Mapping[str, AttrCheck] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    slots: Mapping[str, tuple[bool, tuple[int, ...]]] = field(default_factory=dict)
    stats: tuple[str, ...] = ()
    check: LayerCheck | None = None
    shape: ShapeRule | None = None
    module: ModuleFactory | None = None
    inplace: bool = False
    fresh: bool = False

    def __call__(self, x: list[torch.Tensor], a: dict[str, Any], p: Params,
                 training: bool) -> list[torch.Tensor]:
        return self.fn(x, a, p, training)

    def out_shapes(self, attrs: dict[str, Any], shapes: Sequence[Shape],
                   params: Mapping[str, torch.Tensor | None], n_out: int) -> list[Shape] | None:
        """Output shapes (without batch) for the memory estimate; by default the first
        input's shape for every output."""
        if self.shape is not None:
            return self.shape(attrs, list(shapes), params)
        return [shapes[0]] * n_out if shapes else None


OPS: dict[str, Op] = {}


def module_op(factory: ModuleFactory) -> OpFn:
    """An op run by a layer module built from the layer's attrs, one module per distinct
    attrs (keyed by value: keying by id() would hand a freed graph's module to a new attrs
    dict that happens to reuse the address)."""
    cache: dict[str, nn.Module] = {}

    def run(x, a, p, training):
        key = json.dumps(a, sort_keys=True)
        if key not in cache:
            cache[key] = factory(a)
        return [cache[key](x[0])]
    return run


def register_op(name: str, *, arity: tuple[int, int | None] = (1, 1),
                attrs: Mapping[str, AttrCheck] | None = None, required: tuple[str, ...] = (),
                slots: Mapping[str, tuple[bool, tuple[int, ...]]] | None = None,
                stats: tuple[str, ...] = (), check: LayerCheck | None = None,
                shape: ShapeRule | None = None, module: ModuleFactory | None = None,
                inplace: bool = False, fresh: bool = False) -> Callable[[OpFn], OpFn]:
    """Register the decorated function as op ``name`` with its schema."""
    def deco(fn: OpFn) -> OpFn:
        if name in OPS:
            raise ValueError(f"op {name!r} is registered twice")
        OPS[name] = Op(name, fn, arity, dict(attrs or {}), required, dict(slots or {}), stats,
                       check, shape, module, inplace, fresh)
        return fn
    return deco


def register_module_op(name: str, factory: ModuleFactory, **schema: Any) -> None:
    """Register an op computed by the ``nn.Module`` that ``factory(attrs)`` builds."""
    register_op(name, module=factory, **schema)(module_op(factory))


def bshape(w: torch.Tensor, ndim: int, axis: int = 1) -> torch.Tensor:
    """``w`` viewed to broadcast against an ``ndim``-d tensor from ``axis`` on."""
    return w.reshape((1,) * axis + tuple(w.shape) + (1,) * (ndim - axis - w.dim()))


def conv_out(n: int, k: int, s: int, lo: int, hi: int, d: int = 1, ceil: bool = False) -> int:
    """Output length of a window of ``k`` (dilation ``d``) at stride ``s`` over ``n`` values
    padded by ``lo``/``hi`` (at least 1, for the memory estimate)."""
    span = n + lo + hi - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    return max(1, out)


def chw(shape: Shape) -> tuple[int, int, int]:
    """(C, H, W) of a shape without batch; a C-vector is a 1x1 map."""
    c, h, w = (tuple(shape) + (1, 1))[:3] if len(shape) < 3 else tuple(shape)[:3]
    return c, h, w
