"""Oxford5k: ``compute_ap.cpp``'s AP in float32 arithmetic, and the mAP of its printed values."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import numpy as np

# --------------------------------------------------------------------------------------------
# Oxford5k (compute_ap.cpp)
# --------------------------------------------------------------------------------------------


def oxford_ap(
    ranked: Sequence[str],
    good: Collection[str],
    ok: Collection[str],
    junk: Collection[str],
) -> float:
    """AP of one ranked list exactly as ``compute_ap.cpp`` computes it (float32 arithmetic).

    positives = good | ok (sets: duplicates in the gt lists count once); junk entries are
    skipped but a positive that is also junk still counts in ``|pos|``; names are compared
    verbatim (a ``\\r`` left by CRLF files matches nothing); a positive ranked twice counts
    twice; ``old_precision`` starts at 1; no positive -> NaN (0/0); empty list -> 0.
    """
    pos, amb = set(good) | set(ok), set(junk)
    kept = [name in pos for name in ranked if name not in amb]
    hit_at = np.flatnonzero(kept)  # j of each positive among non-junk entries
    f32 = np.float32
    if not pos:
        if not kept:
            return 0.0
        with np.errstate(invalid="ignore"):
            return float(f32(0.0) / f32(0.0))  # x86's default NaN: printed "-nan"
    n_pos = f32(len(pos))
    ap = f32(0.0)
    for i, j in enumerate(hit_at.tolist(), start=1):
        # float recall = n / (float)|pos|; float precision = n / (j + 1.0) (double, then float)
        recall, old_recall = f32(i) / n_pos, f32(i - 1) / n_pos
        precision = f32(i / (j + 1.0))
        old_precision = f32((i - 1) / float(j)) if j > 0 else f32(1.0)
        step = float(f32(recall - old_recall)) * (float(f32(old_precision + precision)) / 2.0)
        ap = f32(float(ap) + step)
    return float(ap)


def format_cout_float(x: float) -> str:
    """``std::cout << float`` with the default precision (6 significant digits, ``%g``)."""
    if math.isnan(x):
        return "-nan" if math.copysign(1.0, x) < 0 else "nan"
    return f"{x:.6g}"


def oxford_map(aps: Sequence[float]) -> float:
    """Mean of the APs as ``compute_ap`` prints them (6 significant digits), the official mAP."""
    return float(np.mean([float(format_cout_float(a)) for a in aps]))
