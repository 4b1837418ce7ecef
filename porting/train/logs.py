"""Training logs: ``log.csv``/``log.json`` and ``curves.png``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from porting.outputs import atomic_write
from porting.train.recipe import STAT_NAMES


def _csv_columns() -> list[str]:
    cols = ["epoch", "lr", "dividor", "positives_per_batch", "train_pairs"]
    cols += [f"train_{s}" for s in STAT_NAMES] + ["val_pairs"] + [f"val_{s}" for s in STAT_NAMES]
    return cols + ["eval_rank1", "eval_mAP", "eval_split", "time_s", "pairs_per_s"]


def write_logs(out: Path, history: list[dict[str, Any]], header: dict[str, Any],
               plot: bool = True) -> None:
    """``log.csv`` (one row per epoch), ``log.json`` (config, recipe, rules, history) and
    ``curves.png``."""
    cols = _csv_columns()

    def w_csv(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            wr.writeheader()
            for row in history:
                wr.writerow({c: ("" if row.get(c) is None else row.get(c)) for c in cols})

    atomic_write(out / "log.csv", w_csv)
    text = json.dumps({**header, "history": history}, indent=1, default=str)
    atomic_write(out / "log.json", lambda tmp: Path(tmp).write_text(text))
    if plot:
        plot_curves(out / "curves.png", history)


#: y-axis label of each panel of ``curves.png``.
PANEL_LABELS = {"loss": "loss per pair", "error": "top-1 error (fraction)",
                "retrieval": "retrieval (%)"}


def plot_curves(path: Path, history: list[dict[str, Any]]) -> None:
    """``curves.png``: :func:`curves_figure` at 90 dpi."""
    import matplotlib.pyplot as plt

    fig = curves_figure(history)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    finally:
        plt.close(fig)


def curves_figure(history: list[dict[str, Any]]) -> Any:
    """Losses and errors per epoch, train vs held-out (cnn_train_dag's ``net-train.pdf``),
    and the retrieval rank-1 / mAP in percent, as the epoch lines print them.

    Epochs are whole numbers on the x axes; every panel has a y-axis label
    (:data:`PANEL_LABELS`), losses and errors in the units of the epoch lines."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ep = [h["epoch"] for h in history]
    has_eval = any(h.get("eval_rank1") is not None for h in history)
    fig, axes = plt.subplots(1, 3 if has_eval else 2, figsize=(15 if has_eval else 10, 4))
    for ax, group, key, title in ((axes[0], STAT_NAMES[:3], "loss", "loss (per pair)"),
                                  (axes[1], STAT_NAMES[3:], "error", "error")):
        for i, s in enumerate(group):
            color = f"C{i}"
            ax.plot(ep, [np.nan if h.get(f"train_{s}") is None else h[f"train_{s}"]
                         for h in history], "o-", color=color, label=f"train {s}",
                    markersize=3)
            val = [h.get(f"val_{s}") for h in history]
            if any(v is not None for v in val):
                ax.plot(ep, [np.nan if v is None else v for v in val], "s--", color=color,
                        label=f"val {s}", markersize=3)
        ax.set_title(title)
        ax.set_ylabel(PANEL_LABELS[key])
    if has_eval:
        pts = [(h["epoch"], h["eval_rank1"], h.get("eval_mAP")) for h in history
               if h.get("eval_rank1") is not None]
        axes[2].plot([p[0] for p in pts], [100 * p[1] for p in pts], "o-", label="rank-1")
        axes[2].plot([p[0] for p in pts], [np.nan if p[2] is None else 100 * p[2]
                                           for p in pts], "s-", label="mAP")
        axes[2].set_title(f"retrieval ({history[-1].get('eval_split') or ''})")
        axes[2].set_ylabel(PANEL_LABELS["retrieval"])
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(ep) == 1:  # one epoch: a tick at it, not a fractional range around it
            ax.set_xticks(ep)
        ax.grid(True)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
