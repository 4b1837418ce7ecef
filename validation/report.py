"""The validation report: honest comparison with the published figures, the tables printed on
screen, the JSON and the CMC plot.

A published figure is compared only on the published test set (its counts,
:func:`porting.validation.published.split_mismatch`) and with the recipe that produced it;
otherwise its row says ``n/a`` and why. Pure functions except :func:`write_json` and
:func:`plot_cmc`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from porting.outputs import atomic_write

from .published import Published, measured_by

#: Columns of the per-protocol table, in this order (percent).
METRICS = ("mAP", "mINP", "rank1", "rank5", "rank10", "rank20")


@dataclass(frozen=True)
class Comparison:
    """One published figure against the protocol of this run that measures it."""

    key: str
    metric: str
    protocol: str  # the protocol of this run that measured it
    ours: float | None  # percent; None when not compared
    published: float
    delta: float | None
    within: bool | None  # None when not compared
    status: str  # "compared" or "n/a: <why>"
    source: str
    recipe: str
    note: str = ""

    @property
    def compared(self) -> bool:
        return self.status == "compared"


def compare_figures(ours: Mapping[str, Mapping[str, float]], figures: Iterable[Published],
                    tolerance: float, *, split_reason: str | None = None,
                    recipe: str | None = None, recipe_note: str = "") -> list[Comparison]:
    """One row per (figure, protocol of this run that measures it); figures whose protocol
    did not run are left out.

    ``ours``: protocol -> metric -> percent. ``split_reason``: why the data is not the
    published test set (None = it is); ``recipe``: the recipe that ran (None = unknown, e.g.
    feature files: then not checked, said in the note). A compared figure is met when ours is
    at least the published value minus ``tolerance`` points.
    """
    rows = []
    for p in figures:
        for proto in measured_by(p.protocol):
            if proto not in ours:
                continue
            value = ours[proto].get(p.metric)
            note = p.note
            if split_reason is not None:
                status = f"n/a: {split_reason}"
            elif p.recipe and recipe is not None and p.recipe != recipe:
                status = f"n/a: made with recipe {p.recipe}, this run used {recipe}"
            elif value is None or math.isnan(value):
                status = f"n/a: {p.metric} not measured by {proto}"
            else:
                status = "compared"
                if p.recipe and recipe is None:
                    note = "; ".join(x for x in (note, recipe_note or
                                                 f"recipe {p.recipe} assumed") if x)
            if status != "compared":
                rows.append(Comparison(p.key, p.metric, proto, None, p.value, None, None,
                                       status, p.source, p.recipe, note))
                continue
            delta = value - p.value
            rows.append(Comparison(p.key, p.metric, proto, value, p.value, delta,
                                   delta >= -tolerance, status, p.source, p.recipe, note))
    return rows


def _f(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.2f}"
    return str(v)


def header(fields: Mapping[str, Any]) -> str:
    """``name: value`` lines (model, dataset, recipe, protocols...), aligned."""
    width = max((len(k) for k in fields), default=0)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in fields.items() if v is not None)


def protocol_table(protocols: Mapping[str, Mapping[str, float]]) -> str:
    """One row per protocol that ran: mAP, mINP, rank-1/5/10/20 (percent; blank = n/a)."""
    rows = [[name, *(_f(vals.get(m)) for m in METRICS)] for name, vals in protocols.items()]
    return tabulate(rows, headers=["protocol", "mAP", "mINP", "R1", "R5", "R10", "R20"],
                    tablefmt="github", disable_numparse=True)


def comparison_table(rows: Sequence[Comparison]) -> str:
    """Each published figure: ours, published, delta, and met / NOT met / n/a (why)."""
    out = []
    for c in rows:
        verdict = c.status if not c.compared else ("yes" if c.within else "NO")
        out.append([c.key, c.protocol, c.metric, _f(c.ours), _f(c.published),
                    "" if c.delta is None else f"{c.delta:+.2f}", verdict,
                    c.recipe or "-", c.note])
    return tabulate(out, headers=["figure", "protocol", "metric", "ours (%)", "published (%)",
                                  "delta", "within tolerance", "recipe", "note"],
                    tablefmt="github", disable_numparse=True)


def matrix_table(cm: np.ndarray, title: str) -> str:
    """A camera-pair matrix (fractions) in percent: probe camera rows, gallery columns."""
    n = cm.shape[0]
    rows = [[f"probe c{i + 1}", *(_f(100 * float(v)) for v in cm[i])] for i in range(n)]
    return f"{title}\n" + tabulate(rows, headers=["", *(f"gallery c{j + 1}" for j in range(n))],
                                   tablefmt="github", disable_numparse=True)


def listing(title: str, items: Sequence[Any], show: int = 50) -> str:
    """``title (n):`` then one item a line (the first ``show``, then how many more)."""
    lines = [f"{title} ({len(items)}):"] + [f"  {x}" for x in items[:show]]
    if len(items) > show:
        lines.append(f"  ... and {len(items) - show} more (all in the JSON)")
    return "\n".join(lines)


def check_status(rows: Sequence[Comparison], split_reason: str | None,
                 tolerance: float) -> tuple[int, str]:
    """``--check``: (exit code, message). 2: not the published test set, nothing can be
    checked; 1: a compared figure is missed by more than ``tolerance``, or none compared;
    0: every compared figure met."""
    if split_reason is not None:
        return 2, f"check impossible: {split_reason}; published figures are not compared"
    compared = [c for c in rows if c.compared]
    if not compared:
        return 1, "check failed: no published figure was compared"
    missed = [c for c in compared if not c.within]
    if missed:
        names = ", ".join(f"{c.key} [{c.protocol}] ({c.delta:+.2f})" for c in missed)
        return 1, f"check failed (tolerance {tolerance}): {names}"
    return 0, f"check passed: {len(compared)} figure(s) within {tolerance} points"


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


def cmc_title(model: str, dataset: str, protocol: str, mAP: float, rank1: float) -> str:
    """The CMC plot title: model, dataset, protocol, mAP and rank-1."""
    return f"{model} on {dataset}, {protocol}\nmAP {_f(mAP)}%, rank-1 {_f(rank1)}%"


def plot_cmc(path: str | Path, curves: dict[str, list[float]], max_rank: int = 50,
             title: str = "CMC") -> None:
    """CMC curves (fractions) up to ``max_rank`` as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    for label, cmc in curves.items():
        n = min(max_rank, len(cmc))
        ax.plot(range(1, n + 1), [100 * c for c in cmc[:n]], label=label)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()

    def save(tmp: str) -> None:
        fig.savefig(tmp, format="png")

    atomic_write(path, save)
    plt.close(fig)
