"""Queries without a true match, and empty query or gallery sets, in the metric functions.

The official ``.m`` scripts give a query whose identity has no image in another camera AP
0/0 = NaN (so mAP NaN) and count it a miss at every rank: ``market_edge.npz`` holds two such
queries, and the per-query outputs still match the official ones exactly. The figures a
report shows (:meth:`RankingResult.matched`) skip them, every figure over the same queries:
the expected values here are computed from the OFFICIAL per-query arrays of the fixture.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from porting.validation import metrics as m
from porting.validation.datasets import ReIDDataset, ReIDSplit
from porting.validation.run import score_market, summarize

from conftest import FIXTURES

EVAL = FIXTURES / "eval"


def _edge() -> dict[str, np.ndarray]:
    with np.load(EVAL / "market_edge.npz") as z:
        return {k: z[k] for k in z.files}


def _labels(z: dict) -> tuple[np.ndarray, ...]:
    return z["q_pids"], z["g_pids"], z["q_camids"], z["g_camids"]


@pytest.mark.parametrize("suffix", ["full", "rs50"])
def test_matched_figures_skip_queries_without_a_true_match(suffix: str) -> None:
    z = _edge()
    k = None if suffix == "full" else int(z[f"official_rank_size_{suffix}"])
    r = m.evaluate_market(z["dist"], *_labels(z), k)
    official_ap = z[f"official_ap_{suffix}"]
    first_hit = z[f"official_first_hit_{suffix}"]
    # the official per-query outputs are unchanged, NaN AP and CMC row 0 included
    np.testing.assert_array_equal(np.isnan(r.ap), np.isnan(official_ap))
    np.testing.assert_array_equal(r.first_hit, first_hit)
    np.testing.assert_array_equal(r.cmc, z[f"official_cmc_{suffix}"])
    assert math.isnan(r.mAP)
    # the two queries of the README table (id only in the query camera, id absent)
    assert r.n_skipped == 2 and np.flatnonzero(~r.has_match).tolist() == [1, 2]
    keep = ~np.isnan(official_ap)
    s = r.matched()
    assert s.n_query == 7 and s.n_skipped == 0
    assert s.mAP == pytest.approx(float(np.mean(official_ap[keep])), abs=1e-6)
    n = len(z[f"official_cmc_{suffix}"])
    ranks = np.arange(1, n + 1)
    rows = (first_hit[keep, None] > 0) & (ranks[None, :] >= first_hit[keep, None])
    np.testing.assert_array_equal(s.cmc, rows.mean(0))
    assert s.rank(1) == rows[:, 0].mean()
    assert s.mINP == pytest.approx(r.mINP_valid, abs=1e-15)
    # the report's percent figures are the matched ones
    figures = summarize(r)
    assert figures["mAP"] == pytest.approx(100 * s.mAP)
    assert figures["rank1"] == pytest.approx(100 * rows[:, 0].mean())
    assert figures["rank5"] == pytest.approx(100 * rows[:, 4].mean())


def test_matched_is_identity_when_every_query_has_a_match() -> None:
    with np.load(EVAL / "market_small.npz") as z:
        r = m.evaluate_market(z["dist"], z["q_pids"], z["g_pids"], z["q_camids"],
                              z["g_camids"], None)
        assert r.n_skipped == 0 and r.matched() is r
        assert r.mAP == pytest.approx(float(z["official_mAP_full"]), abs=1e-6)


def test_no_query_with_a_match_gives_nan_figures_without_dividing_by_zero() -> None:
    dist = np.array([[0.5, 1.0], [1.0, 0.2]], np.float32)
    r = m.evaluate_market(dist, [7, 8], [1, 2], [1, 1], [2, 2], None)
    assert r.n_skipped == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice", no 0/0 warning
        s = r.matched()
        assert s.n_query == 0
        assert math.isnan(s.mAP) and math.isnan(s.mINP) and math.isnan(s.rank(1))
        assert np.isnan(s.cmc).all() and len(s.cmc) == 2
        figures = summarize(r)
    assert all(math.isnan(v) for v in figures.values())


@pytest.mark.parametrize("shape", [(0, 5), (3, 0)])
def test_empty_sets_are_a_clear_value_error(shape: tuple[int, int]) -> None:
    nq, ng = shape
    what = "no query to score" if nq == 0 else "no gallery to rank"
    q_f = np.ones((nq, 4), np.float32)
    g_f = np.ones((ng, 4), np.float32)
    qp, qc = np.arange(nq), np.ones(nq, int)
    gp, gc = np.arange(ng), np.full(ng, 2)
    dist = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=what):
        m.evaluate_market(dist, qp, gp, qc, gc, None)
    with pytest.raises(ValueError, match=what):
        m.evaluate_market_features(q_f, g_f, qp, gp, qc, gc, None)
    with pytest.raises(ValueError, match=what):
        m.evaluate_market_noninterpolated(dist, qp, gp, qc, gc)
    with pytest.raises(ValueError, match=what):
        m.multi_query_rerank(dist, g_f, qp, gp, qc, gc, None)
    with pytest.raises(ValueError, match=what):
        m.evaluate_cuhk03_multishot(q_f, g_f, qp, gp)


def test_score_market_reports_on_the_matched_queries() -> None:
    """What validate prints and plots: every protocol's figures and curves over the queries
    with a true match; the per-query AP (JSON) keeps every query."""
    z = _edge()
    names = [str(x) for x in z["query_names"]]

    def split(p: np.ndarray, c: np.ndarray, n: list[str]) -> ReIDSplit:
        return ReIDSplit(tuple(Path("/nowhere", x) for x in n), p, c, tuple(n))

    data = ReIDDataset(query=split(z["q_pids"], z["q_camids"], names),
                       gallery=split(z["g_pids"], z["g_camids"],
                                     [str(x) for x in z["gallery_names"]]),
                       train=None, gt_bbox=None, name="market1501", root=Path("/nowhere"))
    res = score_market(z["query_f"], z["gallery_f"], data, None, dxy=True)
    assert res.single.n_skipped == 2 and len(res.single.ap) == 9
    for name, curve in res.curves.items():
        assert 100 * curve[0] == pytest.approx(res.protocols[name]["rank1"]), name
    keep = ~np.isnan(z["official_ap_full"])
    assert res.summary["mAP"] == pytest.approx(100 * z["official_ap_full"][keep].mean(),
                                               abs=1e-4)
