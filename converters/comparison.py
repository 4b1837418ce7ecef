"""What ``compare`` measures, shared by a dump (:mod:`.compare`) and OpenCV
(:mod:`.opencv_caffe`): a row per output, the keys not compared, and the seeded input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Row:
    """One compared output: our shape and the reference's; errors are None when the shapes
    differ. ``key`` is the reference's name for it."""

    name: str
    shape: list[int]
    max_abs: float | None
    max_rel: float | None
    ref_shape: list[int] | None = None
    # "ok", "FAIL" (over rtol), "SHAPE" (shapes differ) or "fp32" (over rtol by float32
    # rounding: see porting.converters.opencv_caffe)
    status: str = "ok"
    max_ref: float | None = None
    key: str = ""


@dataclass
class NotCompared:
    """A reference key that was not compared, and why."""

    key: str
    reason: str
    input: bool = False  # a graph input: fed to the net, not an output left unchecked


@dataclass
class Comparison:
    rows: list[Row]
    not_compared: list[NotCompared] = field(default_factory=list)
    order: list[str] = field(default_factory=list)

    @property
    def compared(self) -> list[Row]:
        return [r for r in self.rows if r.status != "SHAPE"]

    @property
    def unchecked(self) -> list[NotCompared]:
        return [n for n in self.not_compared if not n.input]

    @property
    def outputs(self) -> int:
        """M in "N of M outputs compared": every reference output, compared or not."""
        return len(self.rows) + len(self.unchecked)


def seeded_array(seed: int, shape: Sequence[int]) -> np.ndarray:
    """The seeded input recipe of the dumps: ``RandomState(seed).uniform(-128, 128, shape)``
    in float32 (see tests/fixtures/trim_models.py)."""
    return np.random.RandomState(seed).uniform(-128, 128, tuple(shape)).astype(np.float32)


def measure(ours: Mapping[str, np.ndarray | torch.Tensor], ref: Mapping[str, np.ndarray],
            pairs: Sequence[tuple[str, str]]) -> list[Row]:
    """A row per (our var, reference key), in the order given: both as float64, shapes
    compared without singleton dims (MATLAB keeps H x W x C x N where the graph has N x C)."""
    rows = []
    for var, key in pairs:
        a = ours[var]
        a = (a.detach().double().numpy() if isinstance(a, torch.Tensor)
             else np.asarray(a, dtype=np.float64))
        b = np.asarray(ref[key], dtype=np.float64)
        scale = float(np.abs(b).max()) if b.size else 0.0
        if _squeezed(a.shape) != _squeezed(b.shape):
            rows.append(Row(var, list(a.shape), None, None, list(b.shape), "SHAPE", scale, key))
            continue
        diff = float(np.abs(a.reshape(b.shape) - b).max()) if b.size else 0.0
        rows.append(Row(var, list(a.shape), diff, diff / scale if scale > 0 else diff,
                        list(b.shape), max_ref=scale, key=key))
    return rows


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)
