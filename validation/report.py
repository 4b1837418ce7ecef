"""The validation report: comparison with published figures, table, JSON and CMC plot."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from porting.checkpoint import atomic_write

from .published import Published


@dataclass(frozen=True)
class Comparison:
    key: str
    metric: str
    ours: float  # percent
    published: float
    delta: float
    within: bool
    source: str


def compare_published(ours: dict[str, float], published: list[Published],
                      tolerance: float) -> list[Comparison]:
    """``ours`` maps metric name -> percent; one row per published figure we measured.

    A figure is met when ours is at least the published value minus ``tolerance`` points.
    """
    rows = []
    for p in published:
        if p.metric not in ours or math.isnan(ours[p.metric]):
            continue
        delta = ours[p.metric] - p.value
        rows.append(Comparison(p.key, p.metric, ours[p.metric], p.value, delta,
                               delta >= -tolerance, p.source))
    return rows


def table(ours: dict[str, float], comparisons: list[Comparison]) -> str:
    """One row per measured metric, repeated for each published figure it is compared with."""
    rows = []
    for metric, value in ours.items():
        comps = [c for c in comparisons if c.metric == metric]
        if not comps:
            rows.append([metric, f"{value:.2f}", "", "", "", ""])
        for c in comps:
            rows.append([metric, f"{value:.2f}", f"{c.published:.2f}", f"{c.delta:+.2f}",
                         "yes" if c.within else "NO", c.key])
    return tabulate(rows, headers=["metric", "ours (%)", "published (%)", "delta",
                                   "within tolerance", "figure"], tablefmt="github")


def _clean(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    text = json.dumps(_clean(payload), indent=1)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def plot_cmc(path: str | Path, curves: dict[str, list[float]], max_rank: int = 50) -> None:
    """CMC curves (fractions) up to ``max_rank`` as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    for label, cmc in curves.items():
        n = min(max_rank, len(cmc))
        ax.plot(range(1, n + 1), [100 * c for c in cmc[:n]], label=label)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title("CMC")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")

    def save(tmp: str) -> None:
        fig.savefig(tmp, format="png")

    atomic_write(path, save)
    plt.close(fig)
