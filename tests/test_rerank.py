"""k-reciprocal re-ranking against the authors' own outputs and a dense port of the paper.

``fixtures/eval/rerank_small.npz`` (copied from the shared fixtures; provenance in its
``source`` entry) holds the outputs of ``re_ranking_ranklist.py`` (zhunzhong07/
person-re-ranking @ 278f2c70, unmodified) for three settings. :func:`dense_rerank` is a dense,
loop-per-image re-implementation from the paper's definitions (float32 like the authors' code,
stable sort for ties) that the memory-bounded implementation must reproduce at any chunk size.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from porting.validation import metrics as m
from porting.validation.rerank import re_rank_features, re_ranking

from conftest import FIXTURES

FIXTURE = FIXTURES / "eval" / "rerank_small.npz"
SETTINGS = [(20, 6, 0.3), (10, 3, 0.5), (20, 1, 0.0)]
TOL = 1e-6  # the authors' final distances are float32 in [0, 1]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@cache
def load() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as z:
        return {k: z[k] for k in z.files}


def reference(z: dict, k1: int, k2: int, lam: float) -> np.ndarray:
    return z[f"final_dist_k1_{k1}_k2_{k2}_lambda_{lam}"]


def dense_rerank(sq_qg, sq_qq, sq_gg, k1: int, k2: int, lam: float) -> np.ndarray:
    """Zhong et al.'s re-ranking on SQUARED distances, every matrix dense (test oracle)."""
    nq = len(sq_qg)
    full = np.block([[sq_qq, sq_qg], [sq_qg.T, sq_gg]]).astype(np.float32)
    dist = (full / full.max(0)).T  # column-normalised, then transposed
    rank = np.argsort(dist, 1, kind="stable")
    n = len(dist)

    def recip(i: int, k: int) -> np.ndarray:
        fwd = rank[i, : k + 1]
        return fwd[[i in rank[c, : k + 1] for c in fwd]]

    v = np.zeros_like(dist)
    for i in range(n):
        r1 = recip(i, k1)
        members = set(r1.tolist())
        for c in r1:
            rc = recip(c, round(k1 / 2))
            if len(set(rc.tolist()) & set(r1.tolist())) > 2 / 3 * len(rc):
                members |= set(rc.tolist())
        idx = np.array(sorted(members), dtype=np.int64)
        w = np.exp(-dist[i, idx])
        v[i, idx] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(0) for i in range(n)])
    overlap = np.zeros((nq, n), np.float32)
    for q in range(nq):
        for j in np.flatnonzero(v[q]):  # increasing j, in float32
            overlap[q] += np.minimum(v[q, j], v[:, j])
    jaccard = 1 - overlap / (2 - overlap)
    return (jaccard * (1 - lam) + dist[:nq] * lam)[:, nq:]


def assert_same_ranking(ours: np.ndarray, ref: np.ndarray) -> None:
    np.testing.assert_array_equal(
        np.argsort(ours, 1, kind="stable"), np.argsort(ref, 1, kind="stable")
    )


def assert_sorted_by(ours: np.ndarray, ref: np.ndarray, tol: float = TOL) -> None:
    """Our ranking sorts ``ref`` up to ``tol``: only near-ties may be ordered differently."""
    order = np.argsort(ours, 1, kind="stable")
    assert (np.diff(np.take_along_axis(ref, order, 1), axis=1) >= -tol).all()


# --------------------------------------------------------------------------------------------
# The authors' outputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k1", "k2", "lam"), SETTINGS)
def test_matches_the_authors_code(k1: int, k2: int, lam: float) -> None:
    z = load()
    ref = reference(z, k1, k2, lam)
    ours = re_ranking(z["q_g_dist"], z["q_q_dist"], z["g_g_dist"], k1, k2, lam)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL)
    assert_same_ranking(ours, ref)
    # torch inputs give the same, and so does the tiniest chunk budget
    tensors = [torch.from_numpy(z[k]) for k in ("q_g_dist", "q_q_dist", "g_g_dist")]
    np.testing.assert_array_equal(re_ranking(*tensors, k1, k2, lam), ours)
    small = re_ranking(z["q_g_dist"], z["q_q_dist"], z["g_g_dist"], k1, k2, lam, chunk_bytes=1)
    np.testing.assert_array_equal(small, ours)


@pytest.mark.parametrize(("k1", "k2", "lam"), SETTINGS[:2])
def test_dense_oracle_matches_the_authors_code(k1: int, k2: int, lam: float) -> None:
    """The test's own dense port is faithful, so agreeing with it below means something."""
    z = load()
    sq = [z[k] * z[k] for k in ("q_g_dist", "q_q_dist", "g_g_dist")]
    ref = reference(z, k1, k2, lam)
    ours = dense_rerank(*sq, k1, k2, lam)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL)
    assert_same_ranking(ours, ref)


@pytest.mark.parametrize(("k1", "k2", "lam"), SETTINGS)
def test_features_path_matches_the_authors_code(k1: int, k2: int, lam: float) -> None:
    """From features (distances computed per block): equal up to float32 distance rounding."""
    z = load()
    ref = reference(z, k1, k2, lam)
    ours = re_rank_features(z["query_f"], z["gallery_f"], k1, k2, lam)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL)
    assert_sorted_by(ours, ref)


def test_re_ranking_raises_market_map() -> None:
    """The fixture README's (rounded) figures: official mAP 0.401 plain, 0.603 re-ranked."""
    z = load()
    labels = z["q_pids"], z["g_pids"], z["q_camids"], z["g_camids"]
    plain = m.evaluate_market(z["q_g_dist"], *labels, None)
    reranked = m.evaluate_market(re_ranking(z["q_g_dist"], z["q_q_dist"], z["g_g_dist"]),
                                 *labels, None)
    assert plain.mAP == pytest.approx(0.401, abs=1e-3)
    assert reranked.mAP == pytest.approx(0.603, abs=1e-3)


# --------------------------------------------------------------------------------------------
# Chunked equals dense, ties included
# --------------------------------------------------------------------------------------------


def grid_features(seed: int, n: int, dim: int = 3, levels: int = 3) -> np.ndarray:
    """Small-integer points: many duplicates and equal distances, all exact in float32."""
    return np.random.default_rng(seed).integers(0, levels, (n, dim)).astype(np.float32)


@pytest.mark.parametrize(("k1", "k2", "lam"), [*SETTINGS, (3, 2, 0.7), (7, 9, 0.3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_ties_match_the_dense_definition(seed: int, k1: int, k2: int, lam: float) -> None:
    f = grid_features(seed, 70)
    q, g = f[:15], f[15:]
    sq = [cdist(a, b, "sqeuclidean").astype(np.float32) for a, b in ((q, g), (q, q), (g, g))]
    assert len(np.unique(sq[2])) < 30  # heavily tied
    ref = dense_rerank(*sq, k1, k2, lam)
    results = [re_rank_features(q, g, k1, k2, lam, chunk_bytes=c) for c in (1, 999, 2**14, 2**30)]
    for ours in results:  # squared distances of small integers are exact: same bits
        np.testing.assert_array_equal(ours, results[-1])
    np.testing.assert_allclose(results[-1], ref, rtol=0, atol=TOL)
    assert_same_ranking(results[-1], ref)
    # from Euclidean distances: squared in float32 as the authors do
    eu = [np.sqrt(s) for s in sq]
    ref_eu = dense_rerank(*[e * e for e in eu], k1, k2, lam)
    for c in (1, 2**12, 2**30):
        ours = re_ranking(*eu, k1, k2, lam, chunk_bytes=c)
        np.testing.assert_allclose(ours, ref_eu, rtol=0, atol=TOL)
        assert_same_ranking(ours, ref_eu)


@pytest.mark.parametrize("chunk_bytes", [1, 3000, 2**16, 2**30])
def test_random_features_any_chunk(chunk_bytes: int) -> None:
    """Gaussian features: chunked from features == dense oracle on the same sqdist."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((12, 24)).astype(np.float32)
    f = centres[rng.integers(0, 12, 200)] + 0.7 * rng.standard_normal((200, 24), np.float32)
    q, g = f[:40], f[40:]
    sq = [m.sqdist(a, b).numpy() for a, b in ((q, g), (q, q), (g, g))]
    for s in sq[1:]:
        np.fill_diagonal(s, 0.0)
    ref = dense_rerank(*sq, 20, 6, 0.3)
    ours = re_rank_features(q, g, 20, 6, 0.3, chunk_bytes=chunk_bytes)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL)
    assert_sorted_by(ours, ref)


def test_tiny_gallery_and_argument_checks() -> None:
    """Fewer images than k1 + 1: every list is the whole set, as the reference slices it."""
    f = grid_features(3, 9, levels=5)
    q, g = f[:3], f[3:]
    sq = [cdist(a, b, "sqeuclidean").astype(np.float32) for a, b in ((q, g), (q, q), (g, g))]
    np.testing.assert_allclose(re_rank_features(q, g), dense_rerank(*sq, 20, 6, 0.3),
                               rtol=0, atol=TOL)
    with pytest.raises(ValueError, match="shapes"):
        re_ranking(np.ones((3, 6)), np.ones((3, 3)), np.ones((5, 5)))
    with pytest.raises(ValueError, match="k1"):
        re_rank_features(q, g, k1=0)
    assert not math.isnan(float(re_rank_features(q, g, 1, 1, 0.0).sum()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_tensors_device() -> None:
    z = load()
    cpu = re_rank_features(z["query_f"], z["gallery_f"])
    gpu = re_rank_features(torch.from_numpy(z["query_f"]).cuda(),
                           torch.from_numpy(z["gallery_f"]).cuda())
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=TOL)
    tensors = [torch.from_numpy(z[k]).cuda() for k in ("q_g_dist", "q_q_dist", "g_g_dist")]
    np.testing.assert_array_equal(re_ranking(*tensors), reference(z, 20, 6, 0.3))
