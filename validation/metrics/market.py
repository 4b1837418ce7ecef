"""Market-1501 protocols of ``zzd_evaluation_res_faster.m`` and ``zzd_evaluation_res_fast.m``.

Single query (:func:`evaluate_market`, :func:`evaluate_market_features`, the non-official
:func:`evaluate_market_noninterpolated`), multi-query pooling (:func:`pool_multi_query`) and
the script's 1-NN query expansion "re-ranking" (:func:`multi_query_rerank`), vectorised over
chunks of queries with torch on the tensors' device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch

from .ranking import (
    DEFAULT_CHUNK_BYTES,
    OFFICIAL_RANK_SIZE,
    OUT_OF_LIST,
    Array,
    Codes,
    Labels,
    RankingResult,
    as_tensor,
    check_nonempty,
    check_rank_size,
    chunk_rows,
    finish_result,
    list_stats,
    ranked,
    sqdist_into,
    sqnorms,
    top_set,
)

# --------------------------------------------------------------------------------------------
# Market-1501, single query
# --------------------------------------------------------------------------------------------


def _evaluate_ranked_chunks(
    chunks: Iterator[tuple[slice, torch.Tensor]],
    q_pids: Array,
    g_pids: Array,
    q_camids: Array,
    g_camids: Array,
    k: int,
    descending: bool,
    keep_ranking: bool,
    kind: str,
    device: torch.device,
    unsigned: bool = False,
) -> RankingResult:
    sets = (
        (rows, *top_set(scores, k, descending, unsigned)) for rows, scores in chunks
    )
    return _evaluate_top_sets(
        sets, q_pids, g_pids, q_camids, g_camids, k, keep_ranking, kind, device
    )


def _evaluate_top_sets(
    sets: Iterator[tuple[slice, torch.Tensor, torch.Tensor]],
    q_pids: Array,
    g_pids: Array,
    q_camids: Array,
    g_camids: Array,
    k: int,
    keep_ranking: bool,
    kind: str,
    device: torch.device,
) -> RankingResult:
    """Score ranked lists given as ``(rows, key, idx)`` top sets (see :func:`top_set`)."""
    n_good = torch.from_numpy(Labels(g_pids, g_camids).n_good(q_pids, q_camids)).to(device)
    codes = Codes(q_pids, g_pids, q_camids, g_camids, device)
    stats, orders = [], [] if keep_ranking else None
    for rows, key, idx in sets:
        good, junk = codes.market_masks(idx, rows)
        stats.append(list_stats(key, good, junk, n_good[rows], kind))
        if orders is not None:
            orders.append(ranked(key, idx, k))
    return finish_result(stats, k, orders)


def _distmat_chunks(
    d: torch.Tensor, k: int, chunk_bytes: int
) -> Iterator[tuple[slice, torch.Tensor]]:
    step = chunk_rows(d.shape[0], d.shape[1], k, chunk_bytes, n_scores=0)
    for start in range(0, d.shape[0], step):
        rows = slice(start, min(start + step, d.shape[0]))
        yield rows, d[rows]


def evaluate_market(
    distmat: Array,
    q_pids: Array,
    g_pids: Array,
    q_camids: Array,
    g_camids: Array,
    rank_size: int | None = OFFICIAL_RANK_SIZE,
    *,
    descending: bool = False,
    keep_ranking: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> RankingResult:
    """Market-1501 protocol of ``zzd_evaluation_res_faster.m`` on a distance matrix.

    ``distmat`` is ``(n_query, n_gallery)``, float32 like the official ``single`` (other dtypes
    take a slower sort), ranked ascending with ties in gallery order (``descending=True`` for
    similarities). good = same id in another camera; junk = id -1, or same id in the same
    camera; ``0000`` distractors are ordinary negatives. Only the first ``rank_size`` entries
    of each ranking count (official: 2000; None = whole gallery). ``keep_ranking`` stores the
    ranked indices (e.g. for :mod:`~porting.validation.camera_pairs`).
    """
    d = as_tensor(distmat)
    check_nonempty(*d.shape)
    k = check_rank_size(rank_size, d.shape[1])
    return _evaluate_ranked_chunks(
        _distmat_chunks(d, k, chunk_bytes),
        q_pids, g_pids, q_camids, g_camids, k, descending, keep_ranking, "trapezoid", d.device,
    )


def _feature_chunks(
    q: torch.Tensor, g: torch.Tensor, k: int, chunk_bytes: int
) -> Iterator[tuple[slice, torch.Tensor]]:
    qq, gg = sqnorms(q), sqnorms(g)
    step = chunk_rows(q.shape[0], g.shape[0], k, chunk_bytes)
    buf = torch.empty(step, g.shape[0], dtype=torch.float32, device=q.device)
    for start in range(0, q.shape[0], step):
        rows = slice(start, min(start + step, q.shape[0]))
        out = buf[: rows.stop - rows.start]
        yield rows, sqdist_into(out, q[rows], g, qq[rows], gg)


def evaluate_market_features(
    query_features: Array,
    gallery_features: Array,
    q_pids: Array,
    g_pids: Array,
    q_camids: Array,
    g_camids: Array,
    rank_size: int | None = OFFICIAL_RANK_SIZE,
    *,
    keep_ranking: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    on_rows: Callable[[int], None] | None = None,
) -> RankingResult:
    """:func:`evaluate_market` on features: ``sqdist`` is computed chunk by chunk.

    Peak memory stays at about ``chunk_bytes`` beyond the features, whatever the gallery size
    (Market-1501+500k included; a float32 ``np.load(..., mmap_mode="r")`` gallery is read in
    place, never copied); runs on the features' device. ``on_rows(n)`` is called after each
    chunk of ``n`` queries is scored (a progress display for large galleries; no I/O here).
    """
    q = as_tensor(query_features, torch.float32)
    g = as_tensor(gallery_features, torch.float32, q.device)  # a float32 memory map: no copy
    check_nonempty(q.shape[0], g.shape[0])
    k = check_rank_size(rank_size, g.shape[0])
    return _evaluate_ranked_chunks(
        _reporting(_feature_chunks(q, g, k, chunk_bytes), on_rows),
        q_pids, g_pids, q_camids, g_camids, k, False, keep_ranking, "trapezoid", q.device,
        unsigned=True,  # sqdist ends with abs()
    )


def _reporting(chunks: Iterator[tuple[slice, torch.Tensor]],
               on_rows: Callable[[int], None] | None) -> Iterator[tuple[slice, torch.Tensor]]:
    for rows, scores in chunks:
        yield rows, scores
        if on_rows is not None:
            on_rows(rows.stop - rows.start)


def evaluate_market_noninterpolated(
    distmat: Array,
    q_pids: Array,
    g_pids: Array,
    q_camids: Array,
    g_camids: Array,
    rank_size: int | None = None,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> RankingResult:
    """NON-official AP: mean precision at each good image (torchreid / fast-reid style).

    For comparison reports only: it runs above the official trapezoid AP. Same good/junk sets
    and ranking as :func:`evaluate_market`; no truncation by default. torchreid averages over
    queries that have a good image: use :attr:`RankingResult.mAP_valid`.
    """
    d = as_tensor(distmat)
    k = check_rank_size(rank_size, d.shape[1])
    return _evaluate_ranked_chunks(
        _distmat_chunks(d, k, chunk_bytes),
        q_pids, g_pids, q_camids, g_camids, k, False, False, "noninterpolated", d.device,
    )


# --------------------------------------------------------------------------------------------
# Market-1501, multi-query (zzd_evaluation_res_fast.m)
# --------------------------------------------------------------------------------------------


def pool_multi_query(
    gt_features: Array,
    gt_query_index: Array,
    n_query: int,
    mode: Literal["max", "avg"],
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Multi-query feature of each query from its ``gt_bbox`` images, as ``_fast.m`` builds it.

    Each gt feature is L2-normalised, then pooled per query by element-wise max
    (``Hist_max``) or mean (``Hist_avg``), then L2-normalised again. ``gt_query_index`` gives
    the 0-based query of every gt image (same id and camera as the query). MATLAB keeps single
    precision here (default); GNU Octave, which produced the fixtures, keeps double.
    """
    f = as_tensor(gt_features, dtype)
    idx = as_tensor(gt_query_index, torch.int64, f.device)
    counts = torch.bincount(idx, minlength=n_query)
    if bool((counts == 0).any()):
        raise ValueError("every query needs at least one gt_bbox image (the official code fails)")
    f = f / f.pow(2).sum(1, keepdim=True).sqrt()
    out = torch.zeros(n_query, f.shape[1], dtype=dtype, device=f.device)
    if mode == "max":
        index = idx[:, None].expand_as(f)
        out.scatter_reduce_(0, index, f, reduce="amax", include_self=False)
    elif mode == "avg":
        out.index_add_(0, idx, f)
        out /= counts[:, None].to(dtype)
    else:
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    return out / out.pow(2).sum(1, keepdim=True).sqrt()


def _rerank_chunk(
    d: torch.Tensor, g: torch.Tensor, codes: Codes, rows: slice, k: int, knn: int
) -> torch.Tensor:
    key, idx = top_set(d, k, False)
    _, junk = codes.market_masks(idx, rows)
    # the expansion loop runs over index_max, which the script has already truncated to k
    first, col = key.masked_fill(junk, OUT_OF_LIST).topk(min(knn, key.shape[1]), 1, largest=False)
    score = (2 - d) / 2
    for count in range(1, first.shape[1] + 1):
        found = first[:, count - 1] != OUT_OF_LIST
        expanded = g[idx.gather(1, col[:, count - 1 : count]).squeeze(1)]
        score = torch.where(found[:, None], score + (expanded @ g.T) / (count + 1), score)
    return score


def _rerank_chunks(
    dist_max: Array,
    gallery_features: Array,
    q_pids: Array,
    g_pids: Array,
    q_camids: Array,
    g_camids: Array,
    k: int,
    knn: int,
    chunk_bytes: int,
) -> Iterator[tuple[slice, torch.Tensor]]:
    d = as_tensor(dist_max, torch.float32)
    g = as_tensor(gallery_features, torch.float32, d.device)
    codes = Codes(q_pids, g_pids, q_camids, g_camids, d.device)
    step = chunk_rows(d.shape[0], d.shape[1], k, chunk_bytes, n_scores=3)
    for start in range(0, d.shape[0], step):
        rows = slice(start, min(start + step, d.shape[0]))
        yield rows, _rerank_chunk(d[rows], g, codes, rows, k, knn)


def multi_query_rerank_scores(
    dist_max: Array,
    gallery_features: Array,
    q_pids: Array,
    g_pids: Array,
    q_camids: Array,
    g_camids: Array,
    rank_size: int | None = OFFICIAL_RANK_SIZE,
    knn: int = 1,
) -> torch.Tensor:
    """Scores (higher = closer) of the ``_fast.m`` "re-ranking" after max-pooling multi-query.

    ``score = (2 - dist_max)/2`` (cosine for unit features); then each of the first ``knn``
    non-junk images of the max-pooling ranking, within its top ``rank_size``, is an extra query:
    ``score += gallery . expanded / (count + 1)``. float32 like the official ``single`` values.
    """
    d = as_tensor(dist_max, torch.float32)
    k = check_rank_size(rank_size, d.shape[1])
    parts = _rerank_chunks(
        d, gallery_features, q_pids, g_pids, q_camids, g_camids, k, knn, DEFAULT_CHUNK_BYTES
    )
    return torch.cat([score for _, score in parts])


def multi_query_rerank(
    dist_max: Array,
    gallery_features: Array,
    q_pids: Array,
    g_pids: Array,
    q_camids: Array,
    g_camids: Array,
    rank_size: int | None = OFFICIAL_RANK_SIZE,
    knn: int = 1,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> RankingResult:
    """"Multiple queries with max pooling + re-ranking" of ``_fast.m`` (1-NN query expansion).

    ``dist_max`` is the max-pooling distance matrix (:func:`sqdist` of the
    :func:`pool_multi_query` features); the :func:`multi_query_rerank_scores` are ranked
    descending and scored like :func:`evaluate_market`. Not Zhong et al.'s k-reciprocal
    re-ranking.
    """
    d = as_tensor(dist_max, torch.float32)
    k = check_rank_size(rank_size, d.shape[1])
    chunks = _rerank_chunks(
        d, gallery_features, q_pids, g_pids, q_camids, g_camids, k, knn, chunk_bytes
    )
    return _evaluate_ranked_chunks(
        chunks, q_pids, g_pids, q_camids, g_camids, k, True, False, "trapezoid", d.device
    )


@dataclass(frozen=True)
class MultiQueryLines:
    """(mAP, r1) pairs of the multi-query lines: as the official script prints them, and right.

    ``zzd_evaluation_res_fast.m`` stores the max-pooling CMC in ``CMC_avg`` and the
    avg-pooling CMC in ``CMC_max``, so its "avg pooling" line prints avg mAP with MAX r1 and its
    "max pooling" line prints max mAP with AVG r1. README numbers may carry that mix.
    """

    official_avg: tuple[float, float]
    official_max: tuple[float, float]
    correct_avg: tuple[float, float]
    correct_max: tuple[float, float]


def multi_query_lines(mq_max: RankingResult, mq_avg: RankingResult) -> MultiQueryLines:
    """The printed (swapped) and the correctly paired multi-query (mAP, r1) lines."""
    return MultiQueryLines(
        official_avg=(mq_avg.mAP, mq_max.r1),
        official_max=(mq_max.mAP, mq_avg.r1),
        correct_avg=(mq_avg.mAP, mq_avg.r1),
        correct_max=(mq_max.mAP, mq_max.r1),
    )
