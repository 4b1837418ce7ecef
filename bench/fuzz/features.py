"""Feature-file mutators: array edits of the query/gallery features (``validate --features``)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from .common import Payload

# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


def feature_edit(rng: random.Random, arr: np.ndarray, marker: str) -> tuple[Any, str]:
    a = arr.copy()
    action = rng.randrange(12)
    if action <= 2:
        k = rng.choice([1, 1, 5])
        for _ in range(k):
            a[rng.randrange(a.shape[0]), rng.randrange(a.shape[1])] = rng.choice(
                [np.nan, np.inf, -np.inf])
        return a, f"{k} non-finite"
    if action == 3:
        return a.astype(rng.choice([np.complex64, np.float16, np.int32, np.bool_, np.float64,
                                    np.uint8])), "dtype"
    if action == 4:
        return rng.choice([a[0, 0], a[0], a[None], a[:, :, None]]), "ndim"
    if action == 5:
        return (a[:-1] if rng.random() < 0.5 else np.vstack([a, a[:1]])), "rows"
    if action == 6:
        return (a[:, :-1] if rng.random() < 0.5 else np.hstack([a, a[:, :1]])), "width"
    if action == 7:
        s = np.zeros(a.shape[0], dtype=[("x", "f4"), ("y", "f4")])
        return s, "structured"
    if action == 8:
        o = np.empty((a.shape[0], 1), dtype=object)
        o[:] = None
        o[0, 0] = Payload(marker)
        return o, "object-payload"
    if action == 9:
        return a[:0], "empty"
    if action == 10:
        with np.errstate(over="ignore"):
            return a * np.float32(1e38) * np.float32(10), "overflow"
    return a.astype(np.float64) * 1e300, "float64-huge"
