"""The pictures and reports a researcher meets first, read back.

CMC plot: size, a title that fits the figure however long, each curve's legend entry with its
own rank-1 and mAP (the numbers the console prints), percent axes. ``curves.png``: size,
whole-number epochs, a y label on every panel, retrieval in percent. Console: the published
figures collapse to one line when none is compared, tables and headers fit the width, and
``train`` prints validate's report once, after the last epoch (every time with ``-v``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from porting.train.logs import PANEL_LABELS, curves_figure, plot_curves
from porting.validation.cli import main as validate_main
from porting.validation.datasets import load_market1501
from porting.validation.mini import build_mini_market
from porting.validation.report import (
    CMC_DPI,
    CMC_WIDTH,
    Comparison,
    cmc_figure,
    cmc_labels,
    comparison_table,
    header,
    plot_cmc,
)
from porting.validation.run import ReRank, score_market

LONG_TITLE = ("resnet50 I+V (net-epoch-75_from_a_very_long_experiment_name_that_goes_on.pth) "
              "on market1501\nrecipe market-matconvnet-v1, single-query, multi-query, camera "
              "pairs and k-reciprocal re-ranking, 3,368 of 3,368 queries scored")


def _curves(n: int = 5, length: int = 30) -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    curves, figures = {}, {}
    for i in range(n):
        c = np.sort(rng.uniform(0.2, 1.0, length))
        curves[f"protocol {i}"] = c.tolist()
        figures[f"protocol {i}"] = {"mAP": float(rng.uniform(10, 90)), "rank1": 100 * c[0]}
    return curves, figures


def test_cmc_title_fits_and_each_curve_carries_its_own_numbers(tmp_path: Path) -> None:
    curves, figures = _curves()
    fig = cmc_figure(curves, title=LONG_TITLE, figures=figures)
    try:
        fig.canvas.draw()
        width_px = fig.get_figwidth() * fig.dpi
        title = fig._suptitle
        box = title.get_window_extent()
        assert 0 <= box.x0 and box.x1 <= width_px  # not cut off at either end
        assert "3,368 of 3,368 queries scored" in title.get_text().replace("\n", " ")
        ax = fig.axes[0]
        assert ax.get_ylabel() == "matching rate (%)" and ax.get_xlabel() == "rank"
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        assert legend == cmc_labels(curves, figures)
        for (name, c), label, line in zip(curves.items(), legend, ax.get_lines(), strict=True):
            assert label.startswith(f"{name}: ")
            assert f"R-1 {100 * c[0]:.2f}%" in label
            assert f"mAP {figures[name]['mAP']:.2f}%" in label
            np.testing.assert_allclose(line.get_ydata(), 100 * np.asarray(c))  # percent
        for b in (t.get_window_extent() for t in fig.legends[0].get_texts()):
            assert 0 <= b.x0 and b.x1 <= width_px
    finally:
        plt.close(fig)
    png = tmp_path / "cmc.png"
    plot_cmc(png, curves, title=LONG_TITLE, figures=figures)
    im = np.asarray(Image.open(png).convert("RGB"))
    h, w, _ = im.shape
    assert w == round(CMC_WIDTH * CMC_DPI) and h > w * 0.7
    top = im[: h // 12]
    assert (top < 128).any()  # the title is drawn
    assert (top[:, :3] == 255).all() and (top[:, -3:] == 255).all()  # with margins


def test_validate_plot_numbers_are_the_consoles(tmp_path: Path, monkeypatch, capsys) -> None:
    """Every curve validate draws starts at the rank-1 its protocol prints, and the plot
    shows them all; the console lines fit 100 columns when nothing is published."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    root = build_mini_market(Path("mini"))
    data = load_market1501(root, parts=("query", "gallery"))
    rng = np.random.default_rng(2)
    qf = rng.standard_normal((len(data.query.pids), 8)).astype(np.float32)
    gf = rng.standard_normal((len(data.gallery.pids), 8)).astype(np.float32)
    res = score_market(qf, gf, data, None, re_rank=ReRank(), dxy=True)
    assert len(res.curves) == 4
    for name, label in zip(res.curves, cmc_labels(res.curves, res.protocols), strict=True):
        p = res.protocols[name]
        assert f"R-1 {p['rank1']:.2f}%" in label and f"mAP {p['mAP']:.2f}%" in label
    np.save("q.npy", qf)
    np.save("g.npy", gf)
    assert validate_main(["--root", "mini", "--features", "q.npy", "g.npy", "--arch",
                          "resnet50", "--re-rank", "--dxy", "--plot", "cmc.png", "--json",
                          "r.json", "-q"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    published = [line for line in out.splitlines() if "published figures" in line]
    assert len(published) == 1 and "all n/a: not the published test set" in published[0]
    assert "| figure" not in out  # no table of n/a rows
    r = json.loads(Path("r.json").read_text())
    for name, p in r["protocols"].items():
        if name in res.protocols:
            assert p["rank1"] == pytest.approx(res.protocols[name]["rank1"])
    assert r["queries_scored"] == len(data.query.pids) and r["queries_skipped"] == []
    im = Image.open("cmc.png")
    assert im.size[0] == round(CMC_WIDTH * CMC_DPI)


NOT_PUBLISHED = "n/a: not the published test set (12,936 gallery images, expected 19,732)"
OTHER_RECIPE = "n/a: made with recipe market-matconvnet, this run used market-matconvnet-v1"


def _row(key: str, compared: bool, note: str = "", status: str = OTHER_RECIPE) -> Comparison:
    if compared:
        return Comparison(key, "mAP", "single-query", 61.0, 59.87, 1.13, True, "compared",
                          "paper", "market-matconvnet-v1", note)
    return Comparison(key, "mAP", "single-query", None, 59.87, None, None, status, "paper",
                      "market-matconvnet", note)


def test_comparison_table_collapses_and_fits() -> None:
    rows = [_row(f"paper/t2/resnet50/I+V/m{i}", False, status=NOT_PUBLISHED)
            for i in range(16)]
    text = comparison_table(rows, width=100)
    assert text == f"16 published figures, all {NOT_PUBLISHED}"  # one line, under 100
    assert len(text) <= 100
    rows = [_row(f"paper/t2/resnet50/I+V/m{i}", False) for i in range(16)]
    text = comparison_table(rows, width=60)  # a longer reason wraps, indented, never wider
    assert text.startswith("16 published figures, all n/a: made with recipe")
    assert max(len(line) for line in text.splitlines()) <= 60
    assert all(line.startswith("  ") for line in text.splitlines()[1:])
    two = comparison_table(rows[:2] + [_row("x", False, status=NOT_PUBLISHED)], width=200)
    assert two == f"3 published figures, all 2 {OTHER_RECIPE}; 1 {NOT_PUBLISHED}"
    mixed = rows[:3] + [_row("paper/t2/resnet50/I+V/mAP", True, note="x " * 60)]
    for width in (100, 160):
        table = comparison_table(mixed, width=width)
        assert max(len(line) for line in table.splitlines()) <= width
        assert "paper/t2/resnet50/I+V/mAP" in table and "+1.13" in table
    wide = comparison_table(mixed, width=1000)
    assert "x x x" in wide  # the note is there when there is room


def test_header_wraps_values_under_themselves() -> None:
    text = header({"model": "a " * 80, "dataset": "/some/path/that_is_long " * 5}, width=100)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100 and len(lines) > 2
    assert all(line.startswith(" " * len("dataset: ")) for line in lines[1:]
               if not line.startswith("dataset:"))


def _history(n: int) -> list[dict]:
    rng = np.random.default_rng(1)
    out = []
    for e in range(1, n + 1):
        row = {"epoch": e, "lr": 0.1}
        for s in ("objective", "objective_2", "objective_final", "top1err", "top1err_2",
                  "top1err_compare"):
            row[f"train_{s}"] = float(rng.uniform(0, 1))
            row[f"val_{s}"] = float(rng.uniform(0, 1))
        row.update({"eval_rank1": 0.1 * e, "eval_mAP": 0.05 * e, "eval_split": "test"})
        out.append(row)
    return out


@pytest.mark.parametrize("n", [1, 2, 5])
def test_training_curves_labels_and_units(n: int, tmp_path: Path) -> None:
    hist = _history(n)
    fig = curves_figure(hist)
    try:
        fig.canvas.draw()
        assert len(fig.axes) == 3
        assert [ax.get_ylabel() for ax in fig.axes] == list(PANEL_LABELS.values())
        for ax in fig.axes:
            lo, hi = ax.get_xlim()
            ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks
            assert ax.get_xlabel() == "epoch"
        rank1 = fig.axes[2].get_lines()[0].get_ydata()
        np.testing.assert_allclose(rank1, [100 * h["eval_rank1"] for h in hist])  # percent
    finally:
        plt.close(fig)
    plot_curves(tmp_path / "curves.png", hist)
    im = Image.open(tmp_path / "curves.png")
    assert im.size == (15 * 90, 4 * 90)
    assert len(np.unique(np.asarray(im.convert("L")))) > 10


def test_train_prints_the_full_report_once_at_the_end(tmp_path: Path, monkeypatch,
                                                       capsys) -> None:
    """The real loop, checkpoints and ``validate`` on them; the epochs' SGD steps (tested in
    tests/test_train.py) and the crop probe replaced, to keep this test fast."""
    from porting.train.cli import main as train
    from porting.train.trainer import Trainer

    from test_train import write_market

    def epoch_without_steps(self, epoch: int) -> dict:
        return {"epoch": epoch, "lr": 0.1, "pairs_per_s": 1.0}

    monkeypatch.setattr(Trainer, "run_epoch_matconvnet", epoch_without_steps)
    # the crop probe (a forward pass per candidate size) is tested with train's arguments
    monkeypatch.setattr("porting.train.trainer.check_crop", lambda *a, **k: None)

    data = write_market(tmp_path / "m", train_ids=range(1, 3), per_id=3, test_ids=range(5, 7),
                        gallery_per_id=1)
    common = [str(data), "--arch", "caffenet", "--trunk-kwargs",
              json.dumps({"widths": [8, 8, 8, 8, 8], "fc_width": 16}), "--epochs", "2",
              "--batch-size", "2", "--holdout", "none", "--eval-every", "1", "--device", "cpu",
              "--eval-split", "test"]
    for verbose in (False, True):
        out_dir = tmp_path / f"run{int(verbose)}"
        argv = [*common, "-o", str(out_dir)] + (["-v"] if verbose else [])
        assert train(argv) == 0
        out = capsys.readouterr().out.splitlines()
        epochs = [i for i, line in enumerate(out) if re.match(r"epoch \d+:", line)]
        assert len(epochs) == 2
        assert "test rank-1" in out[epochs[0]] and "mAP" in out[epochs[0]]
        tables = [i for i, line in enumerate(out) if line.startswith("| protocol")]
        if verbose:
            assert len(tables) == 2 and epochs[0] < tables[0] < epochs[1] < tables[1]
        else:
            assert len(tables) == 1 and tables[0] > epochs[1]
            assert epochs[1] - epochs[0] == 1  # nothing between the epoch lines
