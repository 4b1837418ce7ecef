"""What every MatConvNet layer unit checks its block with: the layer in its model
(:class:`Where`, which also builds the one-line errors), ``vl_nn*``'s rules for geometry
properties (1 or 2/4 integers) and finite numbers, and the layer's parameter values. Errors
name the file, the layer and the block property or param in MatConvNet's words."""

from __future__ import annotations

import numpy as np

from porting.checkpoint_schema import MAX_SIDE  # what a checkpoint may hold

from ..limits import finite, integers, show
from ..matfile import MatFormatError
from .layout import MCNLayer, MCNModel

Shape = tuple[int, ...]


def allowed(lo: int, hi: int | None) -> str:
    """``exactly 1``, ``1 to 2``, ``at least 2``: an arity in words."""
    if hi is None:
        return f"at least {lo}"
    return f"exactly {lo}" if lo == hi else f"{lo} to {hi}"


def fail(model: MCNModel, layer: MCNLayer | None, msg: str) -> MatFormatError:
    """``<file>: layer 'name' (dagnn.Class): <msg>`` (no layer part for ``None``)."""
    where = f"layer {layer.name!r} ({layer.type}): " if layer is not None else ""
    return MatFormatError(f"{model.source_path}: {where}{msg}")


#: Block properties whose value in MatConvNet's own classes may be empty (``[]`` / ``{}``):
#: ``dagnn.BatchNorm.numChannels``, ``dagnn.Sum``/``Concat.numInputs``, ``dagnn.Scale.size``
#: and every ``opts``. Any other property that is present but empty is refused: MatConvNet
#: would fail on it (``vl_nnbnorm(..., 'epsilon', [])``), not take a default.
EMPTY_ALLOWED = frozenset({"numChannels", "numInputs", "size", "opts"})


class Where:
    """One layer of a model being checked: its block properties and params, checked."""

    def __init__(self, model: MCNModel, layer: MCNLayer) -> None:
        self.model = model
        self.layer = layer

    def fail(self, msg: str) -> MatFormatError:
        return fail(self.model, self.layer, msg)

    def check_block(self) -> None:
        """Refuse a block property that is present but empty (the readers give empty
        values as None), whatever the unit reads: one rule for every property."""
        for key, value in self.layer.block.items():
            if value is None and key not in EMPTY_ALLOWED:
                raise self.fail(f"block.{key} is empty; MatConvNet's {self.layer.type} needs "
                                "a value there (remove the property to use its default)")

    def ints(self, key: str, counts: tuple[int, ...], minimum: int,
             default: int) -> list[int]:
        """A geometry block property of 1 (repeated) or ``counts[-1]`` integers in
        ``minimum..MAX_SIDE`` (the bound a checkpoint may hold)."""
        value = self.layer.block.get(key)
        if value is None:
            return [default] * counts[-1]
        out = integers(value, counts, minimum)
        if out is None or max(out) > MAX_SIDE:
            n = " or ".join(map(str, counts))
            raise self.fail(f"block.{key} must be {n} finite integers >= {minimum} "
                            f"(at most {MAX_SIDE}), got {show(value)}")
        return out * counts[-1] if len(out) == 1 else out

    def number(self, key: str, default: float, *, positive: bool = False,
               below: float | None = None) -> float:
        value = self.layer.block.get(key, default)
        if value is None:
            value = default
        f = finite(value)
        if f is None or (positive and f <= 0) or (below is not None and not 0 <= f < below):
            need = "a finite number" + (" > 0" if positive else "") + (
                f" in [0, {below:g})" if below is not None else "")
            raise self.fail(f"block.{key} must be {need}, got {show(value)}")
        return f

    def param(self, i: int) -> np.ndarray | None:
        """The value of the layer's ``i``-th param (``None`` when it lists fewer)."""
        if i >= len(self.layer.params):
            return None
        return self.model.params[self.layer.params[i]].value
