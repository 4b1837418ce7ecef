"""Checks both converters apply to a source file's values before any compute: integer
attributes, finite weights, and a peak-memory estimate for the dry run.

The readers turn every problem into an error naming the file and the layer in the source
framework's words; these helpers only say *what* is wrong with one value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Caffe and MatConvNet keep layer geometry in C ints: anything larger is garbage in both.
INT_MAX = 2**31 - 1
# Default for --max-memory: the dry run of the paper's nets needs well under 1 GB.
DEFAULT_MAX_MEMORY_GB = 4.0


def integer(value: Any, minimum: int) -> int | None:
    """``value`` as an int if it is a finite integral number in [minimum, INT_MAX], else None
    (bools, NaN, Inf, fractions and arrays with extra dimensions are refused)."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, np.ndarray):
        if value.size != 1 or value.dtype.kind not in "iuf":
            return None
        value = value.reshape(()).item()
    if isinstance(value, np.integer | np.floating):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    if not isinstance(value, int) or not minimum <= value <= INT_MAX:
        return None
    return value


def integers(value: Any, counts: Sequence[int], minimum: int) -> list[int] | None:
    """A scalar or flat list of ``len in counts`` integers >= minimum, else None."""
    items = value if isinstance(value, list | tuple) else [value]
    if len(items) not in counts:
        return None
    out = [integer(v, minimum) for v in items]
    return None if any(v is None for v in out) else out  # type: ignore[return-value]


def finite(value: Any) -> float | None:
    """``value`` as a finite float, else None."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
        value = value.reshape(()).item()
    if isinstance(value, int | float | np.integer | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    return None


def nonfinite_count(array: np.ndarray) -> int:
    """How many NaN/Inf values an array holds (0 for integer arrays)."""
    if array.dtype.kind not in "fc":
        return 0
    return int(array.size - np.count_nonzero(np.isfinite(array)))


def show(value: Any) -> str:
    """A short rendering of a bad value for a message."""
    if isinstance(value, np.ndarray):
        return f"a {'x'.join(map(str, value.shape))} array"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def dims(shape: Iterable[int]) -> str:
    return "x".join(str(d) for d in shape)


@dataclass
class MemoryPlan:
    """The dry run's activations in execution order, to estimate its peak from shapes.

    Each step produces tensors (element counts); a tensor is freed after its last reader,
    as :class:`porting.graph.GraphModule` does. The dry run uses PyTorch's native
    convolution, whose workspace depends on the backend and is not counted.
    """

    steps: list[tuple[str, list[str], list[tuple[str, int]]]] = field(default_factory=list)

    def add(self, layer: str, inputs: Sequence[str], outputs: Sequence[tuple[str, int]]) -> None:
        self.steps.append((layer, list(inputs), list(outputs)))

    def peak_bytes(self, feeds: Iterable[tuple[str, int]], itemsize: int = 4) -> tuple[int, str]:
        """(peak bytes, the layer where it is reached)."""
        live: dict[str, int] = dict(feeds)
        last: dict[str, int] = {}
        for i, (_, inputs, _) in enumerate(self.steps):
            for v in inputs:
                last[v] = i
        peak, where = sum(live.values()), "the input"
        for i, (layer, inputs, outputs) in enumerate(self.steps):
            for name, n in outputs:
                live[name] = n
            now = sum(live.values())
            if now > peak:
                peak, where = now, layer
            for v in inputs:
                if last.get(v) == i and v in live and v not in {o for o, _ in outputs}:
                    del live[v]
        return peak * itemsize, where


def check_memory(need: int, where: str, limit_gb: float, source: str,
                 what: str) -> str | None:
    """The one-line refusal when the estimate ``need`` (bytes) exceeds the limit."""
    if need <= limit_gb * 1e9:
        return None
    return (f"{source}: the dry run would need about {need / 1e9:.1f} GB ({what}; peak at "
            f"layer {where!r}), over the limit of {limit_gb:g} GB; raise it with "
            f"--max-memory GB if this machine has the memory")
