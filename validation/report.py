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
import shutil
import textwrap
from collections import Counter
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
#: Console width when the output is not a terminal (``shutil.get_terminal_size``'s fallback).
DEFAULT_WIDTH = 100


def terminal_width() -> int:
    """Columns of the terminal (``COLUMNS`` first), :data:`DEFAULT_WIDTH` when piped."""
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


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


def header(fields: Mapping[str, Any], width: int | None = None) -> str:
    """``name: value`` lines (model, dataset, recipe, protocols...), aligned, each value
    wrapped under itself to ``width`` columns (default :func:`terminal_width`; words such
    as paths are never broken)."""
    width = width or terminal_width()
    key_w = max((len(k) for k in fields), default=0) + 2
    out = []
    for k, v in fields.items():
        if v is None:
            continue
        lines = textwrap.wrap(str(v), max(20, width - key_w), break_long_words=False,
                              break_on_hyphens=False) or [""]
        out.append(f"{k + ':':<{key_w}}{lines[0]}")
        out += [" " * key_w + line for line in lines[1:]]
    return "\n".join(out)


def scoring_notes(n_query: int, skipped: Sequence[str], rank_size: int | None
                  ) -> dict[str, str]:
    """Header lines saying which queries every figure counts and what each figure is.

    A query whose identity has no image in another camera of the gallery has no true
    match: the official ``.m`` scripts give it AP 0/0 (so mAP NaN) and count it a miss at
    every rank; here, as in torchreid and fast-reid, every figure skips it."""
    cut = f", lists cut at {rank_size}" if rank_size else ""
    if skipped:
        scored = (f"{n_query - len(skipped):,} of {n_query:,}: {len(skipped):,} without a "
                  "true match in the gallery (same identity, other camera) skipped by every "
                  "figure: " + ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else ""))
    else:
        scored = f"all {n_query:,} (each has a true match in the gallery)"
    return {"queries scored": scored,
            "figures": "percent of the scored queries: mAP / mINP their mean AP / INP "
                       f"(junk removed{cut}); R-k: first true match within rank k"}


def protocol_table(protocols: Mapping[str, Mapping[str, float]]) -> str:
    """One row per protocol that ran: mAP, mINP, rank-1/5/10/20 (percent; blank = n/a)."""
    rows = [[name, *(_f(vals.get(m)) for m in METRICS)] for name, vals in protocols.items()]
    return _table(rows, ["protocol", "mAP", "mINP", "R1", "R5", "R10", "R20"])


def comparison_table(rows: Sequence[Comparison], width: int | None = None) -> str:
    """Each published figure: ours, published, delta, met (yes / NO / n/a, each reason
    for n/a once under the table).

    When no figure is compared (e.g. data that is not a published test set) the rows would
    all say ``n/a``: one line says why instead. Otherwise the table fits ``width`` columns
    (default :func:`terminal_width`): long cells are wrapped, then the recipe and note
    columns dropped (they stay in the JSON)."""
    width = width or terminal_width()
    if rows and not any(c.compared for c in rows):
        reasons = Counter(c.status for c in rows)
        why = "; ".join(r if len(reasons) == 1 else f"{n} {r}" for r, n in reasons.items())
        return textwrap.fill(f"{len(rows)} published figures, all {why}",
                             width, subsequent_indent="  ", break_long_words=False,
                             break_on_hyphens=False)
    reasons = list(dict.fromkeys(c.status.removeprefix("n/a: ") for c in rows
                                 if not c.compared))
    out = []
    for c in rows:
        met = (f"n/a ({reasons.index(c.status.removeprefix('n/a: ')) + 1})"
               if not c.compared else "yes" if c.within else "NO")
        out.append([c.key, c.protocol, c.metric, _f(c.ours), _f(c.published),
                    "" if c.delta is None else f"{c.delta:+.2f}", met, c.note,
                    c.recipe or "-"])
    heads = ["figure", "protocol", "metric", "ours %", "published %", "delta", "met", "note",
             "recipe"]
    # narrower and narrower: wrap the note, drop the recipe, drop the note, wrap the names
    table = fit_table(out, heads, width, stages=(((), (7, 8)), ((8,), (7,)), ((7, 8), ()),
                                                 ((7, 8), (0, 1))))
    return "\n".join([table] + [textwrap.fill(f"({i}) n/a: {r}", width, subsequent_indent="    ",
                                             break_long_words=False, break_on_hyphens=False)
                                for i, r in enumerate(reasons, start=1)])


def _table(rows: Sequence[Sequence[str]], heads: Sequence[str],
           maxw: Sequence[int | None] | None = None) -> str:
    import tabulate as tab

    padding, tab.MIN_PADDING = tab.MIN_PADDING, 0  # no blank columns after short headers
    try:
        return tabulate(rows, headers=list(heads), tablefmt="github", disable_numparse=True,
                        maxcolwidths=list(maxw) if maxw else None)
    finally:
        tab.MIN_PADDING = padding


def _width(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def fit_table(rows: Sequence[Sequence[str]], heads: Sequence[str], width: int,
              stages: Sequence[tuple[Sequence[int], Sequence[int]]] = ()) -> str:
    """A github-style table no wider than ``width`` if it can be.

    ``stages``: ``(columns dropped, columns wrapped)`` tried in turn after the natural
    table; in a stage the wrapped columns shrink in their order, each down to 12
    characters, until the table fits. The last stage's table is returned if none fits."""
    text = _table(rows, heads)
    for dropped, wrapped in stages:
        if _width(text) <= width:
            break
        cols = [i for i in range(len(heads)) if i not in dropped]
        sub = [[r[i] for i in cols] for r in rows]
        maxw: list[int | None] = [None] * len(cols)
        text = _table(sub, [heads[i] for i in cols])
        for i in wrapped:
            if _width(text) <= width:
                break
            j = cols.index(i)
            natural = max([len(heads[i])] + [len(str(r[i])) for r in rows])
            maxw[j] = max(12, natural - (_width(text) - width))
            text = _table(sub, [heads[i] for i in cols], maxw)
    return text


def matrix_table(cm: np.ndarray, title: str) -> str:
    """A camera-pair matrix (fractions) in percent: probe camera rows, gallery columns."""
    n = cm.shape[0]
    rows = [[f"probe c{i + 1}", *(_f(100 * float(v)) for v in cm[i])] for i in range(n)]
    return (f"{title}, probe camera (rows) x gallery camera (columns)\n"
            + _table(rows, ["", *(f"c{j + 1}" for j in range(n))]))


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


def cmc_title(model: str, dataset: str, note: str = "") -> str:
    """The CMC plot title: model and dataset, then ``note`` (recipe, queries scored); each
    curve's own rank-1 and mAP are in the legend (:func:`cmc_labels`)."""
    return f"{model} on {dataset}" + (f"\n{note}" if note else "")


def cmc_labels(curves: Mapping[str, Sequence[float]],
               figures: Mapping[str, Mapping[str, float]] | None = None) -> list[str]:
    """One legend entry per curve: its name, the rank-1 the curve itself starts at, and
    the protocol's mAP from ``figures`` (percent; left out when not measured)."""
    out = []
    for name, cmc in curves.items():
        parts = [f"R-1 {_f(100 * float(cmc[0]))}%" if len(cmc) else "R-1 n/a"]
        m = (figures or {}).get(name, {}).get("mAP")
        if m is not None and not math.isnan(m):
            parts.append(f"mAP {_f(m)}%")
        out.append(f"{name}: {', '.join(parts)}")
    return out


#: CMC plot geometry: figure width (inches), axes height, height of a legend line.
CMC_WIDTH, CMC_AXES, CMC_LEGEND_LINE = 7.0, 4.2, 0.2
CMC_DPI = 100


def plot_cmc(path: str | Path, curves: dict[str, list[float]], max_rank: int = 50,
             title: str = "CMC", figures: Mapping[str, Mapping[str, float]] | None = None
             ) -> None:
    """CMC curves (fractions) up to ``max_rank`` as a PNG (:func:`cmc_figure`)."""
    import matplotlib.pyplot as plt

    fig = cmc_figure(curves, max_rank, title, figures)

    def save(tmp: str) -> None:
        fig.savefig(tmp, format="png")

    try:
        atomic_write(path, save)
    finally:
        plt.close(fig)


def cmc_figure(curves: Mapping[str, Sequence[float]], max_rank: int = 50, title: str = "CMC",
               figures: Mapping[str, Mapping[str, float]] | None = None) -> Any:
    """The CMC figure: curves (fractions) up to ``max_rank``, in percent like the console.

    The title is wrapped to the figure's width (never cut off); the legend, under the axes,
    gives each curve its own rank-1 and mAP (:func:`cmc_labels`). The figure is
    ``CMC_WIDTH x (CMC_AXES + one CMC_LEGEND_LINE per curve + the title)`` inches at
    ``CMC_DPI``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    lines = [line for part in title.split("\n")
             for line in textwrap.wrap(part, 80, break_on_hyphens=False) or [""]]
    legend_h = CMC_LEGEND_LINE * (len(curves) + 1)
    title_h = 0.18 * len(lines) + 0.2
    height = CMC_AXES + legend_h + title_h
    fig, ax = plt.subplots(figsize=(CMC_WIDTH, height), dpi=CMC_DPI)
    labels = cmc_labels(curves, figures)
    for i, (label, cmc) in enumerate(zip(labels, curves.values(), strict=True)):
        n = min(max_rank, len(cmc))  # line styles keep equal curves apart
        ax.plot(range(1, n + 1), [100 * c for c in cmc[:n]], label=label,
                linestyle=("-", "--", "-.", ":")[i % 4], marker="o" if n <= 20 else None,
                markersize=3)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_xlim(1, max(2, min(max_rank, max((len(c) for c in curves.values()), default=2))))
    ax.set_ylim(0, 100)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle("\n".join(lines), fontsize=9)
    ax.grid(True, alpha=0.3)
    if curves:
        fig.legend(loc="lower left", bbox_to_anchor=(0.02, 0.0), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, legend_h / height, 1, 1 - 0.05 / height))
    return fig
