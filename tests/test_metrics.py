"""The evaluation protocols against the outputs of the ORIGINAL evaluation code.

Every expected value is an ``official_*`` array of ``tests/fixtures/eval`` (produced by the
official MATLAB scripts under GNU Octave, and by the original ``compute_ap.cpp``; see the
README there). Ranks, first hits and CMC must match exactly, AP to 1e-6 (official values are
double). A hypothesis test checks the vectorised evaluators against literal per-query ports of
``compute_AP_rerank.m``, ``compute_AP_multiCam.m`` and ``compute_r1_multiCam.m``.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from porting.validation import camera_pairs as cp
from porting.validation import metrics as m
from porting.validation.metrics import ranking

from conftest import FIXTURES

EVAL = FIXTURES / "eval"
AP_TOL = 1e-6

MARKET_CASES = [
    ("market_small", "full"),
    ("market_small", "rs100"),
    ("market_trunc", "full"),
    ("market_trunc", "rs2000"),
    ("market_edge", "full"),
    ("market_edge", "rs50"),
]


@pytest.fixture(autouse=True)
def _one_thread():
    """These arrays are tiny: intra-op threads only add synchronisation (slow on a busy host)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@cache
def load(name: str) -> dict[str, np.ndarray]:
    with np.load(EVAL / f"{name}.npz") as z:
        return {k: z[k] for k in z.files}


def labels(z: dict) -> tuple[np.ndarray, ...]:
    return z["q_pids"], z["g_pids"], z["q_camids"], z["g_camids"]


def assert_ap(ours: np.ndarray, official: np.ndarray, tol: float = AP_TOL) -> None:
    ours, official = np.asarray(ours, np.float64), np.asarray(official, np.float64)
    assert ours.shape == official.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(official))
    np.testing.assert_allclose(ours, official, rtol=0, atol=tol)


def assert_ranking(result: m.RankingResult, z: dict, middle: str, suffix: str) -> None:
    assert_ap(result.ap, z[f"official_ap{middle}_{suffix}"])
    np.testing.assert_array_equal(result.first_hit, z[f"official_first_hit{middle}_{suffix}"])
    np.testing.assert_array_equal(result.cmc, z[f"official_cmc{middle}_{suffix}"])


def rank_size(z: dict, suffix: str) -> int:
    return int(z[f"official_rank_size_{suffix}"])


# --------------------------------------------------------------------------------------------
# Market-1501: zzd_evaluation_res_faster.m / _fast.m
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["market_small", "market_trunc", "market_edge"])
def test_sqdist_is_bit_exact(name: str) -> None:
    z = load(name)
    np.testing.assert_array_equal(m.sqdist(z["query_f"], z["gallery_f"]).numpy(), z["dist"])


@pytest.mark.parametrize(("name", "suffix"), MARKET_CASES)
def test_market_single_query(name: str, suffix: str) -> None:
    z = load(name)
    k = rank_size(z, suffix)
    from_features = m.evaluate_market_features(z["query_f"], z["gallery_f"], *labels(z), k)
    assert_ranking(from_features, z, "", suffix)
    assert len(from_features.cmc) == k
    official_map = float(z[f"official_mAP_{suffix}"])
    if math.isnan(official_map):
        assert math.isnan(from_features.mAP)
    else:
        assert from_features.mAP == pytest.approx(official_map, abs=AP_TOL)
    # the distance-matrix entry point, one query per chunk
    from_dist = m.evaluate_market(z["dist"], *labels(z), k, chunk_bytes=1)
    assert_ranking(from_dist, z, "", suffix)


def test_market_truncation_matters() -> None:
    """rank_size=2000 changes some queries of market_trunc, and the port follows."""
    z = load("market_trunc")
    full, cut = z["official_ap_full"], z["official_ap_rs2000"]
    changed = np.flatnonzero(np.abs(full - cut) > AP_TOL)
    assert changed.size > 0
    ours = m.evaluate_market(z["dist"], *labels(z), m.OFFICIAL_RANK_SIZE).ap
    assert_ap(ours[changed], cut[changed])


def test_market_edge_cases() -> None:
    """README table: NaN AP without good image, CMC row 0, mAP NaN over ALL queries."""
    z = load("market_edge")
    r = m.evaluate_market(z["dist"], *labels(z), None)
    no_good = np.isnan(z["official_ap_full"])
    assert no_good.tolist() == [False, True, True, False, False, False, False, False, False]
    assert np.isnan(r.ap[no_good]).all() and (r.first_hit[no_good] == 0).all()
    assert math.isnan(r.mAP)
    assert r.mAP_valid == pytest.approx(np.nanmean(z["official_ap_full"]), abs=AP_TOL)
    assert r.r1 == z["official_cmc_full"][0]


@pytest.mark.parametrize(("name", "suffix"), MARKET_CASES)
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_multi_query(name: str, suffix: str, mode: str) -> None:
    z = load(name)
    r = m.evaluate_market(z[f"official_dist_{mode}"], *labels(z), rank_size(z, suffix))
    assert_ranking(r, z, f"_mq_{mode}", suffix)


@pytest.mark.parametrize(("name", "suffix"), MARKET_CASES)
def test_multi_query_printed_lines(name: str, suffix: str) -> None:
    """The official lines pair avg-pooling mAP with max-pooling r1 and vice versa."""
    z = load(name)
    k = rank_size(z, suffix)
    mq_max = m.evaluate_market(z["official_dist_max"], *labels(z), k)
    mq_avg = m.evaluate_market(z["official_dist_avg"], *labels(z), k)
    lines = m.multi_query_lines(mq_max, mq_avg)
    for ours, key in ((lines.official_avg, "avg"), (lines.official_max, "max")):
        printed = z[f"official_printed_mq_{key}_line_{suffix}"]
        assert_ap(np.array([ours[0]]), printed[:1])
        assert ours[1] == printed[1]
    assert lines.correct_avg[1] == z[f"official_cmc_mq_avg_{suffix}"][0]
    assert lines.correct_max[1] == z[f"official_cmc_mq_max_{suffix}"][0]


@pytest.mark.parametrize(("name", "suffix"), MARKET_CASES)
def test_multi_query_rerank(name: str, suffix: str) -> None:
    z = load(name)
    r = m.multi_query_rerank(
        z["official_dist_max"], z["gallery_f"], *labels(z), rank_size(z, suffix)
    )
    assert_ranking(r, z, "_mq_max_rerank", suffix)


@pytest.mark.parametrize("name", ["market_small", "market_trunc", "market_edge"])
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool_multi_query(name: str, mode: str) -> None:
    z = load(name)
    official = z[f"official_Hist_{mode}"]
    n_query = len(z["q_pids"])
    # Octave pooled in double: same values up to summation order
    pooled = m.pool_multi_query(z["gt_f"], z["gt_query_index"], n_query, mode, torch.float64)
    np.testing.assert_allclose(pooled.numpy(), official, rtol=0, atol=1e-15)
    # MATLAB pools in single: within one float32 epsilon
    single = m.pool_multi_query(z["gt_f"], z["gt_query_index"], n_query, mode)
    assert single.dtype == torch.float32
    np.testing.assert_allclose(single.numpy(), official, rtol=0, atol=np.finfo(np.float32).eps)
    # and sqdist of the pooled features gives the official distances to float32 rounding
    dist = m.sqdist(pooled, z["gallery_f"]).numpy()
    np.testing.assert_allclose(dist, z[f"official_dist_{mode}"], rtol=0, atol=1e-6)


def test_pool_multi_query_needs_gt() -> None:
    with pytest.raises(ValueError, match="gt_bbox"):
        m.pool_multi_query(np.eye(2, dtype=np.float32), np.array([0, 0]), 2, "max")


@pytest.mark.parametrize(("name", "suffix"), MARKET_CASES)
def test_camera_pairs(name: str, suffix: str) -> None:
    z = load(name)
    r = cp.evaluate_camera_pairs(z["dist"], *labels(z), rank_size(z, suffix))
    assert_ap(r.ap_pairwise, z[f"official_ap_pairwise_{suffix}"])
    np.testing.assert_array_equal(r.r1_pairwise, z[f"official_r1_pairwise_{suffix}"])
    assert_ap(r.ap_cm, z[f"official_ap_CM_{suffix}"])
    assert_ap(r.r1_cm, z[f"official_r1_CM_{suffix}"])
    assert_ap(np.array(r.offdiag), z[f"official_CM_offdiag_mean_{suffix}"])


def test_rank_size_must_fit_the_gallery() -> None:
    z = load("market_edge")
    for bad in (0, len(z["g_pids"]) + 1):
        with pytest.raises(ValueError, match="rank_size"):
            m.evaluate_market(z["dist"], *labels(z), bad)


def test_noninterpolated_ap_is_separate_and_higher() -> None:
    """torchreid-style AP: mean precision at the hits, never below the official trapezoid."""
    z = load("market_small")
    ours = m.evaluate_market_noninterpolated(z["dist"], *labels(z))
    official = z["official_ap_full"]
    ref = np.full(len(official), np.nan)
    for q, (qp, qc) in enumerate(zip(z["q_pids"], z["q_camids"], strict=True)):
        order = np.argsort(z["dist"][q], kind="stable")
        p, c = z["g_pids"][order], z["g_camids"][order]
        keep = ~((p == -1) | ((p == qp) & (c == qc)))
        hits = np.flatnonzero(((p == qp) & (c != qc))[keep]) + 1
        if hits.size:
            ref[q] = np.mean(np.arange(1, hits.size + 1) / hits)
    assert_ap(ours.ap, ref)
    valid = ~np.isnan(official)
    assert (ours.ap[valid] >= official[valid] - 1e-12).all()
    assert ours.mAP_valid > np.nanmean(official)


# --------------------------------------------------------------------------------------------
# CUHK03 old protocol
# --------------------------------------------------------------------------------------------


def cuhk_inputs(z: dict) -> tuple[np.ndarray, ...]:
    return z["ff1"], z["ff2"], z["label1"], z["label2"]


def test_cuhk03_multishot() -> None:
    z = load("cuhk03_small")
    r = m.evaluate_cuhk03_multishot(*cuhk_inputs(z))
    assert_ap(r.ap, z["official_ms_ap"])
    np.testing.assert_array_equal(r.first_hit, z["official_ms_first_hit"])
    np.testing.assert_array_equal([r.r1, r.r5, r.r10], z["official_ms_r1_r5_r10"])
    assert r.mAP == pytest.approx(float(z["official_ms_mAP"]), abs=AP_TOL)


def test_cuhk03_single_shot_replays_stored_picks() -> None:
    z = load("cuhk03_small")
    gallery = m.cuhk03_single_shot_gallery(z["ss_picks"], z["label1"], z["label2"])
    np.testing.assert_array_equal(gallery, z["ss_gallery_index"])
    r = m.evaluate_cuhk03_singleshot(*cuhk_inputs(z), z["ss_picks"])
    np.testing.assert_array_equal(r.rank, z["official_ss_rank"])
    assert_ap(r.ap, z["official_ss_ap"])
    np.testing.assert_array_equal(r.r1_r5_r10_per_rep, z["official_ss_r1_r5_r10_per_rep"])
    np.testing.assert_allclose(r.r1_r5_r10, z["official_ss_r1_r5_r10"], rtol=0, atol=1e-15)
    assert r.mAP == pytest.approx(float(z["official_ss_mAP"]), abs=AP_TOL)


def test_cuhk03_single_shot_draw() -> None:
    z = load("cuhk03_small")
    l1, l2 = z["label1"], z["label2"]
    picks = m.draw_cuhk03_single_shot_picks(l1, l2, np.random.default_rng(7), n_reps=2)
    assert picks.shape == (2, len(l1) + len(l2), 100)
    again = m.draw_cuhk03_single_shot_picks(l1, l2, np.random.default_rng(7), n_reps=2)
    np.testing.assert_array_equal(picks, again)
    sizes2 = np.bincount(l2, minlength=101)[1:]
    assert (picks[:, : len(l1)] >= 1).all() and (picks[:, : len(l1)] <= sizes2).all()
    gallery = m.cuhk03_single_shot_gallery(picks, l1, l2)
    assert (l2[gallery[:, : len(l1)]] == np.arange(1, 101)).all()  # one image per identity
    r = m.evaluate_cuhk03_singleshot(*cuhk_inputs(z), picks)
    assert r.ap.shape == (2, len(l1) + len(l2)) and 1 <= r.rank.min() <= r.rank.max() <= 100


# --------------------------------------------------------------------------------------------
# Oxford5k compute_ap.cpp
# --------------------------------------------------------------------------------------------


def test_oxford_ap() -> None:
    z = load("oxford5k_small")
    gt = json.loads(str(z["gt_json"]))
    aps = []
    for i, landmark in enumerate(z["query_landmark"]):
        sets = gt[str(landmark)]
        ranked = z["db_names"][z["ranked_index"][i]].tolist()  # stored as db positions
        aps.append(m.oxford_ap(ranked, sets["good"], sets["ok"], sets["junk"]))
    assert [m.format_cout_float(a) for a in aps] == z["official_ap_str"].tolist()
    np.testing.assert_allclose(aps, z["official_ap"], rtol=0, atol=AP_TOL)
    assert m.oxford_map(aps) == pytest.approx(float(z["official_mAP"]), abs=1e-15)


def test_oxford_edge_cases() -> None:
    z = load("oxford5k_small")
    gt = json.loads(str(z["gt_json"]))
    edges = json.loads(str(z["edges_json"]))
    assert len(edges) == 8
    for edge in edges:
        sets = gt[edge["gtq"]]
        ranked = edge["ranked"]
        if edge.get("crlf"):  # getline keeps the '\r' of every CRLF line
            ranked = [name + "\r" for name in ranked]
        ap = m.oxford_ap(ranked, sets["good"], sets["ok"], sets["junk"])
        assert m.format_cout_float(ap) == edge["official_ap_str"], edge["name"]


# --------------------------------------------------------------------------------------------
# Property: vectorised evaluators == literal per-query ports of the MATLAB loops
# --------------------------------------------------------------------------------------------


def ref_compute_ap(good: set, junk: set, index: np.ndarray) -> tuple[float, np.ndarray]:
    """compute_AP_rerank.m, line by line."""
    cmc = np.zeros(len(index))
    ngood = len(good)
    old_recall, old_precision, ap, intersect_size, j, good_now, njunk = 0.0, 1.0, 0.0, 0, 0, 0, 0
    for n, x in enumerate(index.tolist()):
        flag = False
        if x in good:
            cmc[n - njunk :] = 1
            flag = True
            good_now += 1
        if x in junk:
            njunk += 1
            continue
        if flag:
            intersect_size += 1
        recall = intersect_size / ngood if ngood else math.nan  # 0/0
        precision = intersect_size / (j + 1)
        ap = ap + (recall - old_recall) * ((old_precision + precision) / 2)
        old_recall, old_precision = recall, precision
        j += 1
        if good_now == ngood:
            break
    return ap, cmc


def ref_market(dist, qp, gp, qc, gc, k):
    aps, cmcs = [], []
    for q in range(dist.shape[0]):
        index = np.argsort(dist[q], kind="stable")[:k]
        good = set(np.flatnonzero((gp == qp[q]) & (gc != qc[q])).tolist())
        junk = set(np.flatnonzero((gp == -1) | ((gp == qp[q]) & (gc == qc[q]))).tolist())
        ap, cmc = ref_compute_ap(good, junk, index)
        aps.append(ap)
        cmcs.append(cmc)
    return np.array(aps), np.array(cmcs)


def ref_pair_loop(good_now_set, junk_now, index, ngood, same_cam_block):
    """One camera block of compute_AP_multiCam.m / compute_r1_multiCam.m."""
    ap_out, r1_out = 0.0, None
    old_recall, old_precision, ap, intersect_size, j, good_now = 0.0, 1.0, 0.0, 0, 0, 0
    for x in index.tolist():
        flag = x in good_now_set
        if flag:
            good_now += 1
        if x in junk_now:
            continue
        if r1_out is None:
            r1_out = 1.0 if flag else 0.0
        if flag:
            intersect_size += 1
        if ngood == 0 and same_cam_block:
            break
        recall = intersect_size / ngood
        precision = intersect_size / (j + 1)
        ap = ap + (recall - old_recall) * ((old_precision + precision) / 2)
        old_recall, old_precision = recall, precision
        j += 1
        if good_now == ngood:
            ap_out = ap
            break
    return ap_out, r1_out


def ref_camera_pairs(dist, qp, gp, qc, gc, k):
    ap_pw, r1_pw = np.zeros((len(qp), 6)), np.full((len(qp), 6), -2.0)
    for q in range(len(qp)):
        index = np.argsort(dist[q], kind="stable")[:k]
        good = np.flatnonzero((gp == qp[q]) & (gc != qc[q]))
        junk1 = set(np.flatnonzero(gp == -1).tolist())
        junk2 = np.flatnonzero((gp == qp[q]) & (gc == qc[q]))
        ap, r1 = ref_pair_loop(set(junk2.tolist()), set(good.tolist()) | junk1, index,
                               len(junk2), True)
        c = qc[q] - 1
        ap_pw[q, c] = ap
        r1_pw[q, c] = -1.0 if len(junk2) == 0 and len(index) else (r1 if r1 is not None else -2)
        for cam in np.unique(gc[good]):
            mine = set(good[gc[good] == cam].tolist())
            others = set(good.tolist()) - mine
            ap, r1 = ref_pair_loop(mine, junk1 | set(junk2.tolist()) | others, index,
                                   len(mine), False)
            ap_pw[q, cam - 1] = ap
            r1_pw[q, cam - 1] = r1 if r1 is not None else -2.0
    return ap_pw, r1_pw


@st.composite
def problems(draw):
    nq = draw(st.integers(1, 5))
    ng = draw(st.integers(1, 40))
    levels = draw(st.sampled_from([3, 9, 1000]))  # few distinct distances: many exact ties
    dist = draw(st.lists(st.integers(0, levels - 1), min_size=nq * ng, max_size=nq * ng))
    dist = (np.array(dist, np.float32) / levels * 2).reshape(nq, ng)
    gp = np.array(draw(st.lists(st.sampled_from([-1, 0, 1, 2, 3]), min_size=ng, max_size=ng)))
    gc = np.array(draw(st.lists(st.integers(1, 6), min_size=ng, max_size=ng)))
    qp = np.array(draw(st.lists(st.sampled_from([-1, 1, 2, 3]), min_size=nq, max_size=nq)))
    qc = np.array(draw(st.lists(st.integers(1, 6), min_size=nq, max_size=nq)))
    k = draw(st.one_of(st.none(), st.integers(1, ng)))
    return dist, qp, gp, qc, gc, k


@settings(max_examples=150, deadline=None)
@given(problems(), st.sampled_from([1, m.DEFAULT_CHUNK_BYTES]))
def test_market_matches_the_loop(problem, chunk_bytes) -> None:
    dist, qp, gp, qc, gc, k = problem
    r = m.evaluate_market(dist, qp, gp, qc, gc, k, keep_ranking=True, chunk_bytes=chunk_bytes)
    ref_ap, ref_cmc = ref_market(dist, qp, gp, qc, gc, k or dist.shape[1])
    assert_ap(r.ap, ref_ap, tol=1e-12)
    ref_first = np.where(ref_cmc.any(1), ref_cmc.argmax(1) + 1, 0)
    np.testing.assert_array_equal(r.first_hit, ref_first)
    np.testing.assert_array_equal(r.cmc, ref_cmc.mean(0))
    order = np.argsort(dist, axis=1, kind="stable")[:, : k or dist.shape[1]]
    np.testing.assert_array_equal(r.ranking, order)


@contextmanager
def _prefilter_from(ratio: int):
    """Long-row top-k prefilter (:func:`ranking._smallest`) on rows only ``ratio`` times the
    list (64 in use: Market+500k); restores it after."""
    old, ranking.PREFILTER_RATIO = ranking.PREFILTER_RATIO, ratio
    try:
        yield
    finally:
        ranking.PREFILTER_RATIO = old


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 5), st.integers(16, 500), st.sampled_from([2, 5, 1000, 2**31]),
       st.integers(0, 2**32 - 1), st.data())
def test_block_prefilter_is_topk(rows, n, levels, seed, data) -> None:
    """The prefilter returns exactly topk's values (as a multiset), each entry once, at the
    index it names; also with many ties (few levels), at the threshold too."""
    k = data.draw(st.integers(1, n // (2 * ranking._BLOCK)))
    gen = torch.Generator().manual_seed(seed)
    bits = torch.randint(-min(levels, 2**31), min(levels, 2**31 - 1), (rows, n),
                         generator=gen, dtype=torch.int64).to(torch.int32)
    with _prefilter_from(2):
        vals, idx = ranking._smallest(bits, k)
    ref = torch.topk(bits, k, dim=1, largest=False, sorted=False).values
    assert torch.equal(vals.sort(1).values, ref.sort(1).values)
    assert torch.equal(bits.gather(1, idx), vals)
    assert all(len(set(r.tolist())) == k for r in idx)


@st.composite
def long_problems(draw):
    """:func:`problems` with galleries long enough for the prefilter at ratio 2."""
    nq, ng = draw(st.integers(1, 4)), draw(st.integers(32, 300))
    levels = draw(st.sampled_from([3, 9, 1000]))
    gen = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dist = (gen.integers(0, levels, (nq, ng)) / levels * 2).astype(np.float32)
    gp, gc = gen.choice([-1, 0, 1, 2, 3], ng), gen.integers(1, 7, ng)
    qp, qc = gen.choice([-1, 1, 2, 3], nq), gen.integers(1, 7, nq)
    return dist, qp, gp, qc, gc, draw(st.integers(1, ng // (2 * ranking._BLOCK) - 1))


@settings(max_examples=100, deadline=None)
@given(long_problems())
def test_market_with_the_prefilter_matches_the_loop(problem) -> None:
    dist, qp, gp, qc, gc, k = problem
    with _prefilter_from(2):
        r = m.evaluate_market(dist, qp, gp, qc, gc, k, keep_ranking=True)
    ref_ap, ref_cmc = ref_market(dist, qp, gp, qc, gc, k)
    assert_ap(r.ap, ref_ap, tol=1e-12)
    np.testing.assert_array_equal(r.cmc, ref_cmc.mean(0))
    np.testing.assert_array_equal(r.ranking, np.argsort(dist, axis=1, kind="stable")[:, :k])


@settings(max_examples=100, deadline=None)
@given(problems())
def test_camera_pairs_match_the_loops(problem) -> None:
    dist, qp, gp, qc, gc, k = problem
    ranking = m.rank_gallery(dist, k)
    ref_ap, ref_r1 = ref_camera_pairs(dist, qp, gp, qc, gc, k or dist.shape[1])
    assert_ap(cp.camera_pair_ap(ranking, qp, gp, qc, gc), ref_ap, tol=1e-12)
    np.testing.assert_array_equal(cp.camera_pair_r1(ranking, qp, gp, qc, gc), ref_r1)


@settings(max_examples=50, deadline=None)
@given(problems())
def test_descending_rank_is_stable(problem) -> None:
    """sort(score, 'descend') keeps ties in gallery order too (CUHK03, re-ranking)."""
    dist, *_, k = problem
    ours = m.rank_gallery(-dist, k, descending=True)
    np.testing.assert_array_equal(ours, np.argsort(dist, 1, kind="stable")[:, : k or None])


@pytest.mark.parametrize("nan", [math.nan, -math.nan])
@pytest.mark.parametrize("k", [None, 1])
def test_descending_puts_nan_first_whatever_its_sign_bit(nan, k) -> None:
    """A NaN with its sign bit set became a positive NaN once negated for the descending
    sort and took the bits shortcut, which ranks it last (found by hypothesis)."""
    scores = np.array([[-1.5, nan, -0.5]], np.float32)  # negated: no sign bit but the NaN
    assert m.rank_gallery(scores, k, descending=True).tolist() == [[1, 2, 0][: k or 3]]


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda r: st.integers(1, 30).flatmap(
            lambda n: st.tuples(
                st.lists(
                    st.sampled_from([-1.5, -0.5, -0.0, 0.0, 0.5, 1.5, 2.0, math.nan, -math.nan]),
                    min_size=r * n, max_size=r * n,
                ).map(lambda v, r=r, n=n: np.array(v, np.float32).reshape(r, n)),
                st.one_of(st.none(), st.integers(1, n)),
                st.booleans(),
            )
        )
    )
)
def test_rank_gallery_is_matlab_sort(case) -> None:
    """Any sign, -0 == +0, ties in gallery order, NaN last (first when descending), any cut."""
    scores, k, descending = case
    ours = m.rank_gallery(scores, k, descending=descending)
    if descending:  # numpy puts NaN last: move them first, in gallery order
        ref = np.argsort(-scores, 1, kind="stable")
        ref = np.array([np.concatenate([r[np.isnan(s[r])], r[~np.isnan(s[r])]])
                        for r, s in zip(ref, scores, strict=True)])
    else:
        ref = np.argsort(scores, 1, kind="stable")
    np.testing.assert_array_equal(ours, ref[:, : k or None])


# --------------------------------------------------------------------------------------------
# mINP (Ye et al., TPAMI 2021) and rank-20
# --------------------------------------------------------------------------------------------


def torchreid_inp(dist: np.ndarray, qp, gp, qc, gc) -> np.ndarray:
    """torchreid's ``eval_market1501`` INP, written from its definition (NaN: no match).

    Same-id-same-camera gallery images are removed, then ``inp = cmc[max_pos_idx] /
    (max_pos_idx + 1)`` with ``cmc`` the cumulative match count. A stable sort stands in for
    ``np.argsort`` so that ties go by gallery order, as in the official ranking.
    """
    out = np.full(dist.shape[0], np.nan)
    for q in range(dist.shape[0]):
        order = np.argsort(dist[q], kind="stable")
        keep = ~((gp[order] == qp[q]) & (gc[order] == qc[q]))
        raw_cmc = (gp[order][keep] == qp[q]).astype(int)
        if not raw_cmc.any():
            continue
        max_pos_idx = np.max(np.where(raw_cmc == 1))
        out[q] = raw_cmc.cumsum()[max_pos_idx] / (max_pos_idx + 1.0)
    return out


def test_minp_equals_torchreids_definition() -> None:
    """Without id -1 images and without a cut, torchreid's junk rule is the official one."""
    z = load("market_small")
    keep = z["g_pids"] != -1
    dist, gp, gc = z["dist"][:, keep], z["g_pids"][keep], z["g_camids"][keep]
    ours = m.evaluate_market(dist, z["q_pids"], gp, z["q_camids"], gc, None)
    ref = torchreid_inp(dist, z["q_pids"], gp, z["q_camids"], gc)
    assert_ap(ours.inp, ref, tol=1e-12)
    assert ours.mINP_valid == pytest.approx(np.nanmean(ref), abs=1e-12)
    assert np.isnan(ours.mINP) == bool(np.isnan(ref).any())
    valid = ~np.isnan(ref)  # a fraction in (0, 1], like AP
    assert ((ours.inp[valid] > 0) & (ours.inp[valid] <= 1)).all() and (ours.inp[valid] < 1).any()


def test_minp_on_features_and_chunks() -> None:
    """Random features, several queries per chunk or one: same INP as the reference."""
    rng = np.random.default_rng(3)
    qf, gf = rng.standard_normal((30, 16), np.float32), rng.standard_normal((300, 16), np.float32)
    qp, gp = rng.integers(0, 12, 30), rng.integers(0, 12, 300)
    qc, gc = rng.integers(1, 7, 30), rng.integers(1, 7, 300)
    ref = torchreid_inp(m.sqdist(qf, gf).numpy(), qp, gp, qc, gc)
    for chunk_bytes in (1, m.DEFAULT_CHUNK_BYTES):
        ours = m.evaluate_market_features(qf, gf, qp, gp, qc, gc, None, chunk_bytes=chunk_bytes)
        assert_ap(ours.inp, ref, tol=1e-12)


def test_inp_beyond_the_cut_is_zero() -> None:
    """A query whose last true match falls outside the top ``rank_size`` gets INP 0."""
    z = load("market_trunc")
    full = m.evaluate_market(z["dist"], *labels(z), None)
    cut = m.evaluate_market(z["dist"], *labels(z), m.OFFICIAL_RANK_SIZE)
    order = np.argsort(z["dist"], 1, kind="stable")
    good = (z["g_pids"][order] == z["q_pids"][:, None]) & (
        z["g_camids"][order] != z["q_camids"][:, None]
    )
    n_good = good.sum(1)
    inside = good[:, : m.OFFICIAL_RANK_SIZE].sum(1) == n_good
    assert (~inside).any() and inside.any()  # the fixture exercises both cases
    assert_ap(cut.inp[inside], full.inp[inside], tol=0)
    np.testing.assert_array_equal(cut.inp[~inside & (n_good > 0)], 0.0)


@settings(max_examples=100, deadline=None)
@given(problems())
def test_inp_matches_the_definition(problem) -> None:
    """Any ids (junk -1 included), ties and cut: |G| / rank of the last good, official list."""
    dist, qp, gp, qc, gc, k = problem
    r = m.evaluate_market(dist, qp, gp, qc, gc, k)
    ref = np.full(len(qp), np.nan)
    for q in range(len(qp)):
        order = np.argsort(dist[q], kind="stable")
        is_good = (gp == qp[q]) & (gc != qc[q])
        junk = (gp == -1) | ((gp == qp[q]) & (gc == qc[q]))
        n = int(is_good.sum())
        if n == 0:
            continue
        listed = order[: k or len(order)]
        kept = listed[~junk[listed]]
        hits = np.flatnonzero(is_good[kept])
        ref[q] = n / (hits[-1] + 1) if hits.size == n else 0.0
    assert_ap(r.inp, ref, tol=1e-12)


def test_rank20() -> None:
    z = load("market_small")
    r = m.evaluate_market(z["dist"], *labels(z), None)
    first = z["official_first_hit_full"]
    assert r.r20 == r.rank(20) == pytest.approx(np.mean((first >= 1) & (first <= 20)))
    assert r.r10 <= r.r20
    short = m.evaluate_market(z["dist"], *labels(z), 10)
    assert math.isnan(short.r20)


# --------------------------------------------------------------------------------------------
# Streaming the gallery (Market-1501+500k, memory-mapped)
# --------------------------------------------------------------------------------------------


def tied_features(rng: np.random.Generator, n: int, dim: int = 8) -> np.ndarray:
    """Features in {-1, 0, 1}/4: few distinct distances, all exact in float32 (many ties)."""
    return (rng.integers(-1, 2, (n, dim)) / 4).astype(np.float32)


@pytest.mark.parametrize("chunk_bytes", [1, 40_000, 300_000, m.DEFAULT_CHUNK_BYTES])
@pytest.mark.parametrize("rank_size", [None, 5, 300])
def test_streamed_gallery_equals_the_distance_matrix(chunk_bytes: int, rank_size) -> None:
    """Gallery chunks merged into running top-k lists: same ranking, ties by gallery order."""
    rng = np.random.default_rng(11)
    qf, gf = tied_features(rng, 37), tied_features(rng, 2100)
    qp, gp = rng.integers(-1, 30, 37), rng.integers(-1, 30, 2100)
    qc, gc = rng.integers(1, 7, 37), rng.integers(1, 7, 2100)
    d = m.sqdist(qf, gf)
    assert len(torch.unique(d)) < 40  # ties everywhere, across every chunk boundary
    ref = m.evaluate_market(d, qp, gp, qc, gc, rank_size, keep_ranking=True)
    ours = m.evaluate_market_features(qf, gf, qp, gp, qc, gc, rank_size, keep_ranking=True,
                                      chunk_bytes=chunk_bytes)
    np.testing.assert_array_equal(ours.ranking, ref.ranking)
    np.testing.assert_array_equal(ours.first_hit, ref.first_hit)
    assert_ap(ours.ap, ref.ap, tol=0)
    assert_ap(ours.inp, ref.inp, tol=0)


def test_memory_mapped_gallery(tmp_path) -> None:
    """A gallery from ``np.load(mmap_mode="r")`` is read in place, chunk by chunk."""
    z = load("market_trunc")
    np.save(tmp_path / "g.npy", z["gallery_f"])
    g = np.load(tmp_path / "g.npy", mmap_mode="r")
    ours = m.evaluate_market_features(z["query_f"], g, *labels(z), rank_size(z, "rs2000"),
                                      chunk_bytes=100_000)
    assert_ranking(ours, z, "", "rs2000")


def test_on_rows_reports_every_query_once_and_changes_nothing() -> None:
    """The progress callback of large-gallery scoring sees each chunk of queries once."""
    rng = np.random.default_rng(3)
    q, g = rng.normal(size=(37, 8)).astype(np.float32), rng.normal(size=(50, 8)).astype(np.float32)
    qp, gp = rng.integers(1, 6, 37), rng.integers(1, 6, 50)
    qc, gc = rng.integers(1, 4, 37), rng.integers(1, 4, 50)
    seen: list[int] = []
    a = m.evaluate_market_features(q, g, qp, gp, qc, gc, 20, chunk_bytes=2048,
                                         on_rows=seen.append)
    b = m.evaluate_market_features(q, g, qp, gp, qc, gc, 20)
    assert sum(seen) == 37 and len(seen) > 1
    assert np.array_equal(a.ap, b.ap, equal_nan=True) and np.array_equal(a.cmc, b.cmc)
