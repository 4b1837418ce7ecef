"""The official evaluation protocols of the paper's code, as pure functions on arrays.

Every function reproduces one official script of layumi/2016_person_re-ID (git 3ef47fef)
or the Oxford ``compute_ap.cpp``, including its quirks, so that ``validate`` scores features
exactly as the published numbers were scored:

* Market-1501 single query: ``zzd_evaluation_res_faster.m`` + ``compute_AP_rerank.m``
  (:func:`evaluate_market`, :func:`evaluate_market_features`);
* Market-1501 multi-query and its 1-NN query expansion: ``zzd_evaluation_res_fast.m``
  (:func:`pool_multi_query`, :func:`multi_query_rerank`, :func:`multi_query_lines`);
* CUHK03 old protocol: ``eval_cuhk03.m`` and ``eval_cuhk03_10times.m`` + ``eval_cuhk03_100.m``
  (:func:`evaluate_cuhk03_multishot`, :func:`evaluate_cuhk03_singleshot`);
* Oxford5k: ``compute_ap.cpp`` (:func:`oxford_ap`, :func:`oxford_map`);
* camera pairs live in :mod:`porting.validation.camera_pairs`.

No file I/O here: callers parse names and ground-truth files and pass arrays and sets.
Scores are ranked with MATLAB's stable sort (ties keep gallery order). The Market evaluation is
vectorised over chunks of queries with torch (on the tensors' device), so its cost is dominated
by the distance matrix product itself.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "OFFICIAL_RANK_SIZE",
    "Cuhk03SingleShotResult",
    "MultiQueryLines",
    "RankingResult",
    "cuhk03_single_shot_gallery",
    "draw_cuhk03_single_shot_picks",
    "evaluate_cuhk03_multishot",
    "evaluate_cuhk03_singleshot",
    "evaluate_market",
    "evaluate_market_features",
    "evaluate_market_noninterpolated",
    "format_cout_float",
    "multi_query_lines",
    "multi_query_rerank",
    "multi_query_rerank_scores",
    "oxford_ap",
    "oxford_map",
    "pool_multi_query",
    "rank_gallery",
    "sqdist",
]

#: ``rank_size`` of ``zzd_evaluation_res_faster.m`` / ``_fast.m``: only the top 2000 count.
OFFICIAL_RANK_SIZE = 2000
#: Budget for one chunk of the (queries x gallery) score matrix.
DEFAULT_CHUNK_BYTES = 512 * 2**20

Array = np.ndarray | torch.Tensor


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankingResult:
    """Per-query AP and first hit, and the CMC curve, of one ranking protocol.

    ``ap`` is NaN for a query without any good gallery image (0/0 in the official code), so
    ``mAP`` is NaN as soon as one query has none, exactly like MATLAB's ``mean(ap)``.
    ``first_hit`` is the 1-based rank of the first good image counted over non-junk entries,
    0 when none is in the ranked list. ``cmc`` is averaged over ALL queries and is as long as
    the ranked list. ``ranking`` (only when asked for) holds the ranked gallery indices.
    """

    ap: np.ndarray
    first_hit: np.ndarray
    cmc: np.ndarray
    ranking: np.ndarray | None = None

    @property
    def mAP(self) -> float:
        """``mean(ap)`` as the official scripts print it (NaN if any query has no good image)."""
        return float(np.mean(self.ap))

    @property
    def mAP_valid(self) -> float:
        """Mean AP over the queries that have a good image (torchreid's convention)."""
        valid = ~np.isnan(self.ap)
        return float(np.mean(self.ap[valid])) if valid.any() else math.nan

    def rank(self, k: int) -> float:
        """CMC at rank ``k`` (1-based); NaN when the list is shorter than ``k``."""
        return float(self.cmc[k - 1]) if len(self.cmc) >= k else math.nan

    @property
    def r1(self) -> float:
        return self.rank(1)

    @property
    def r5(self) -> float:
        return self.rank(5)

    @property
    def r10(self) -> float:
        return self.rank(10)


# --------------------------------------------------------------------------------------------
# Distances and stable ranking
# --------------------------------------------------------------------------------------------


def _tensor(
    x: Array, dtype: torch.dtype | None = None, device: torch.device | None = None
) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        with warnings.catch_warnings():  # read-only arrays (datasets, memmaps): never written
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            x = torch.from_numpy(np.asarray(x))
    return x.to(device=device if device is not None else x.device, dtype=dtype or x.dtype)


def _sqnorms(x: torch.Tensor, block: int = 4096) -> torch.Tensor:
    """``sum(x.*x)`` per row, by blocks: no ``x``-sized temporary (the +500k gallery is GBs)."""
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[0], block):
        rows = x[start : start + block]
        torch.sum(rows * rows, 1, out=out[start : start + block])
    return out


def _sqdist_into(
    out: torch.Tensor, q: torch.Tensor, g: torch.Tensor, qq: torch.Tensor, gg: torch.Tensor
) -> torch.Tensor:
    # sqdist.m: abs(repmat(aa') + repmat(bb) - 2*a'*b), in the features' precision (single)
    torch.add(qq[:, None], gg[None, :], out=out)
    out.addmm_(q, g.T, alpha=-2.0)
    return out.abs_()


def sqdist(query: Array, gallery: Array) -> torch.Tensor:
    """Squared Euclidean distances ``(n_query, n_gallery)`` computed like ``sqdist.m``.

    float32 throughout, ``|q.q + g.g - 2 q.g|`` with one matrix product: for exactly
    L2-normalised features this is ``2 - 2 q.g``, bit for bit what the official code gets.
    """
    q = _tensor(query, torch.float32)
    g = _tensor(gallery, torch.float32, q.device)
    out = torch.empty(q.shape[0], g.shape[0], dtype=torch.float32, device=q.device)
    return _sqdist_into(out, q, g, _sqnorms(q), _sqnorms(g))


# Entries outside a ranked list (the (k+1)-th candidate of a top-k, padding) get this key.
_OUT = torch.iinfo(torch.int64).max


def _sortable_bits(x: torch.Tensor, unsigned: bool, nan_first: bool) -> torch.Tensor:
    """int32 view of float32 scores that orders exactly like MATLAB's ``sort`` compares them.

    Without sign bits (``unsigned``, e.g. after ``abs``) the raw bits already order like the
    values, at no cost. Otherwise negative values get their magnitude bits flipped, ``-0``
    becomes ``+0`` (equal in MATLAB) and NaN goes last (first for a descending sort, as in
    MATLAB). int32 top-k is also faster than float top-k.
    """
    if unsigned or not bool(torch.signbit(x).any()):
        return x.view(torch.int32)  # a positive NaN is above +inf: last, as in MATLAB
    bits = (x + 0.0).view(torch.int32)
    bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    nan = torch.iinfo(torch.int32).min if nan_first else torch.iinfo(torch.int32).max
    return bits.masked_fill_(torch.isnan(x), nan)


def _top_set(
    x: torch.Tensor, k: int, descending: bool, unsigned: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``k`` entries of each row in stable-sort order, as an UNORDERED set.

    Returns ``(key, idx)`` of shape ``(r, m)``, ``m >= k``: gallery indices and unique int64
    order keys (sortable value bits in the high word, gallery index in the low word, so ties
    go by gallery order); entries beyond the first ``k`` have key ``_OUT``. The list is never
    sorted: the metrics count ranks from the keys.
    """
    if descending:  # sort(x, 'descend') is stable too: rank -x ascending, NaN first
        x, unsigned = -x, False
    r, n = x.shape
    if x.dtype != torch.float32:  # keys pack float32 bits: rank other precisions by sorting
        idx = x.sort(dim=1, stable=True).indices[:, :k]
        return torch.arange(idx.shape[1], device=x.device).expand_as(idx), idx
    bits = _sortable_bits(x, unsigned, nan_first=descending)
    if k >= n:
        return torch.add(torch.arange(n, device=x.device), bits, alpha=2**32), (
            torch.arange(n, device=x.device).expand(r, n)
        )
    # topk is O(n) but picks arbitrarily among ties: one extra entry tells whether a tie
    # straddles the cut (two selected entries share the largest value); such rows are sorted.
    vals, idx = torch.topk(bits, k + 1, dim=1, largest=False, sorted=False)
    across = (vals == vals.max(dim=1, keepdim=True).values).sum(1) > 1
    if across.any():
        exact = bits[across].sort(dim=1, stable=True)
        vals[across], idx[across] = exact.values[:, : k + 1], exact.indices[:, : k + 1]
    key = torch.add(idx, vals, alpha=2**32)  # idx + bits * 2**32, in int64
    key.scatter_(1, key.argmax(1, keepdim=True), _OUT)  # the (k+1)-th entry is out
    return key, idx


def _ranked(key: torch.Tensor, idx: torch.Tensor, k: int) -> torch.Tensor:
    """Gallery indices ``(r, k)`` in rank order, from a :func:`_top_set`."""
    return idx.gather(1, key.argsort(dim=1)[:, :k])


def _stable_order(x: torch.Tensor, k: int, descending: bool) -> torch.Tensor:
    """First ``k`` gallery indices of each row in MATLAB ``sort`` order (stable)."""
    return _ranked(*_top_set(x, k, descending), k)


def _check_rank_size(rank_size: int | None, n_gallery: int) -> int:
    if rank_size is None:
        return n_gallery
    if not 1 <= rank_size <= n_gallery:
        # the official script indexes index(1:rank_size) and fails beyond the gallery size
        raise ValueError(f"rank_size must be in 1..{n_gallery} (or None), got {rank_size}")
    return int(rank_size)


def rank_gallery(
    scores: Array, rank_size: int | None = None, descending: bool = False
) -> np.ndarray:
    """Ranked gallery indices ``(n_query, K)`` (0-based), ties kept in gallery order.

    ``descending=False`` for distances (``sort(score, 'ascend')``), True for similarities.
    """
    s = _tensor(scores)
    return _stable_order(s, _check_rank_size(rank_size, s.shape[1]), descending).cpu().numpy()


def _chunk_rows(n_rows: int, n_cols: int, k: int, chunk_bytes: int, n_scores: int = 1) -> int:
    """Query rows per chunk: ``n_scores`` float32 score rows plus ~40 B per listed entry."""
    per_row = 4 * n_scores * n_cols + 40 * min(k + 1, n_cols)
    return max(1, min(n_rows, chunk_bytes // per_row))


# --------------------------------------------------------------------------------------------
# compute_AP.m / compute_AP_rerank.m, counted from order keys
# --------------------------------------------------------------------------------------------


@dataclass
class _ListStats:
    ap: torch.Tensor  # float64 (r,)
    first_hit: torch.Tensor  # int64 (r,)


def _list_stats(
    key: torch.Tensor,
    good: torch.Tensor,
    junk: torch.Tensor,
    n_good: torch.Tensor,
    kind: str = "trapezoid",
) -> _ListStats:
    """AP and first hit of ranked lists given as unordered sets: order keys + good/junk masks.

    Same arithmetic as the official loop: the i-th good among non-junk entries, at non-junk
    rank r, adds ``(i/n - (i-1)/n) * ((p_prev + i/r)/2)`` with ``p_prev = (i-1)/(r-1)``, or 1
    before the first entry; ``n`` counts the goods of the WHOLE gallery, so a truncated list
    can miss recall. ``kind="noninterpolated"`` adds ``(i/r)/n`` instead (torchreid).
    Ranks are counted, not sorted: the (few) goods of each row are sorted by key, and every
    entry finds by ``searchsorted`` how many goods precede it.
    """
    inlist = key != _OUT
    good, nonjunk = good & inlist, ~junk & inlist
    r, dev = key.shape[0], key.device
    # goods of each row packed left into (r, G), then sorted by key
    rows, cols = good.nonzero(as_tuple=True)
    counts = torch.bincount(rows, minlength=r)
    slot = torch.arange(rows.numel(), device=dev) - (counts.cumsum(0) - counts)[rows]
    n_slots = int(counts.max()) if rows.numel() else 0
    g_key = torch.full((r, n_slots), _OUT, dtype=torch.int64, device=dev)
    g_key[rows, slot] = key[rows, cols]
    g_nj = torch.zeros((r, n_slots), dtype=torch.bool, device=dev)
    g_nj[rows, slot] = nonjunk[rows, cols]
    g_key, perm = g_key.sort(dim=1)
    g_nj = g_nj.gather(1, perm)
    valid = g_key != _OUT
    # non-junk entries before each good: histogram of "number of goods ahead" over the list
    ahead = torch.searchsorted(g_key, key.contiguous())
    hist = torch.zeros(r, n_slots + 1, dtype=torch.int32, device=dev)
    hist.scatter_add_(1, ahead, nonjunk.int())
    before = hist.cumsum(1)[:, :n_slots] - g_nj.long()
    # CMC: a good entry, junk or not, sets cmc(n - njunk:end) = 1
    first_hit = torch.zeros(r, dtype=torch.int64, device=dev)
    if n_slots:
        first_hit = torch.where(valid[:, 0], before[:, 0] + 1, first_hit)
    # AP: the official loop's terms at the non-junk goods, summed in rank order
    hit = g_nj & valid
    i = hit.cumsum(1).double()
    rr = (before + 1).double()
    n = n_good[:, None].double()
    if kind == "trapezoid":
        prev = torch.where(rr > 1, (i - 1) / (rr - 1), torch.ones_like(rr))
        term = (i / n - (i - 1) / n) * ((prev + i / rr) / 2)
    else:
        term = (i / rr) / n
    ap = torch.zeros(r, dtype=torch.float64, device=dev)
    if n_slots:
        ap = torch.where(hit, term, 0.0).cumsum(1)[:, -1]  # sequential, like ap = ap + ...
    # no good image: recall = 0/0 = NaN at the first non-junk entry (0 if there is none)
    none = n_good == 0
    if none.any():
        ap[none] = torch.where(nonjunk[none].any(1), math.nan, 0.0).to(ap.dtype)
    return _ListStats(ap, first_hit)


def _cmc(first_hit: np.ndarray, length: int) -> np.ndarray:
    """mean over all queries of the per-query CMC rows ``1[rank >= first_hit]``."""
    counts = np.bincount(first_hit, minlength=length + 1)[1 : length + 1]
    return np.cumsum(counts) / len(first_hit)


class _Labels:
    """Gallery identity/camera table, to count each query's good and same-camera images."""

    def __init__(self, g_pids: Array, g_camids: Array) -> None:
        gp, gc = np.asarray(_np(g_pids), np.int64), np.asarray(_np(g_camids), np.int64)
        self.pids, pid_idx = np.unique(gp, return_inverse=True)
        self.cams, cam_idx = np.unique(gc, return_inverse=True)
        self.table = np.zeros((len(self.pids), len(self.cams)), np.int64)
        np.add.at(self.table, (pid_idx, cam_idx), 1)

    def _rows(self, q_pids: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(self.pids, q_pids), 0, len(self.pids) - 1)
        rows = self.table[pos]
        return np.where((self.pids[pos] == q_pids)[:, None], rows, 0)

    def per_camera(self, q_pids: Array, cams: Sequence[int]) -> np.ndarray:
        """``(n_query, len(cams))`` gallery images with the query's id in each camera."""
        rows = self._rows(np.asarray(_np(q_pids), np.int64))
        out = np.zeros((rows.shape[0], len(cams)), np.int64)
        for j, c in enumerate(cams):
            hit = np.flatnonzero(self.cams == c)
            if hit.size:
                out[:, j] = rows[:, hit[0]]
        return out

    def n_good(self, q_pids: Array, q_camids: Array) -> np.ndarray:
        """Same id and a different camera (``good_index`` of the official scripts)."""
        qp, qc = np.asarray(_np(q_pids), np.int64), np.asarray(_np(q_camids), np.int64)
        rows = self._rows(qp)
        return rows.sum(1) - (rows * (self.cams[None, :] == qc[:, None])).sum(1)


def _np(x: Array) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


class _Codes:
    """Each image's id and camera packed in one integer: one gather per ranked entry."""

    def __init__(
        self, q_pids: Array, g_pids: Array, q_camids: Array, g_camids: Array, device: torch.device
    ) -> None:
        qp, gp = np.asarray(_np(q_pids), np.int64), np.asarray(_np(g_pids), np.int64)
        qc, gc = np.asarray(_np(q_camids), np.int64), np.asarray(_np(g_camids), np.int64)
        cams = np.concatenate([qc, gc])
        if cams.size and cams.min() < 0:
            raise ValueError("camera ids must be >= 0")
        self.shift = max(1, int(cams.max(initial=0)).bit_length())
        codes = [qp, (qp << self.shift) | qc, (gp << self.shift) | gc]
        both = np.concatenate(codes)
        fits = both.size == 0 or (both.min() >= -(2**31) and both.max() < 2**31)
        dtype = torch.int32 if fits else torch.int64
        self.q_pids, self.q_codes, self.g_codes = (
            _tensor(c, dtype, device) for c in codes
        )

    def market_masks(self, idx: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """good = same id, other camera; junk = id -1, or same id and same camera."""
        code = self.g_codes[idx]
        same_cam = code == self.q_codes[rows, None]
        pid = code >> self.shift
        return (pid == self.q_pids[rows, None]) ^ same_cam, (pid == -1) | same_cam


def _finish(
    aps: list[torch.Tensor],
    hits: list[torch.Tensor],
    length: int,
    orders: list[torch.Tensor] | None,
) -> RankingResult:
    first_hit = torch.cat(hits).cpu().numpy()
    return RankingResult(
        ap=torch.cat(aps).cpu().numpy(),
        first_hit=first_hit,
        cmc=_cmc(first_hit, length),
        ranking=torch.cat(orders).cpu().numpy() if orders is not None else None,
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
    n_good = torch.from_numpy(_Labels(g_pids, g_camids).n_good(q_pids, q_camids)).to(device)
    codes = _Codes(q_pids, g_pids, q_camids, g_camids, device)
    aps, hits, orders = [], [], [] if keep_ranking else None
    for rows, scores in chunks:
        key, idx = _top_set(scores, k, descending, unsigned)
        good, junk = codes.market_masks(idx, rows)
        stats = _list_stats(key, good, junk, n_good[rows], kind)
        aps.append(stats.ap)
        hits.append(stats.first_hit)
        if orders is not None:
            orders.append(_ranked(key, idx, k))
    return _finish(aps, hits, k, orders)


def _distmat_chunks(
    d: torch.Tensor, k: int, chunk_bytes: int
) -> Iterator[tuple[slice, torch.Tensor]]:
    step = _chunk_rows(d.shape[0], d.shape[1], k, chunk_bytes, n_scores=0)
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
    d = _tensor(distmat)
    k = _check_rank_size(rank_size, d.shape[1])
    return _evaluate_ranked_chunks(
        _distmat_chunks(d, k, chunk_bytes),
        q_pids, g_pids, q_camids, g_camids, k, descending, keep_ranking, "trapezoid", d.device,
    )


def _feature_chunks(
    q: torch.Tensor, g: torch.Tensor, k: int, chunk_bytes: int
) -> Iterator[tuple[slice, torch.Tensor]]:
    qq, gg = _sqnorms(q), _sqnorms(g)
    step = _chunk_rows(q.shape[0], g.shape[0], k, chunk_bytes)
    buf = torch.empty(step, g.shape[0], dtype=torch.float32, device=q.device)
    for start in range(0, q.shape[0], step):
        rows = slice(start, min(start + step, q.shape[0]))
        out = buf[: rows.stop - rows.start]
        yield rows, _sqdist_into(out, q[rows], g, qq[rows], gg)


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
) -> RankingResult:
    """:func:`evaluate_market` on features: ``sqdist`` is computed chunk by chunk.

    Peak memory stays at about ``chunk_bytes`` beyond the features, whatever the gallery size
    (Market-1501+500k included); runs on the features' device.
    """
    q = _tensor(query_features, torch.float32)
    g = _tensor(gallery_features, torch.float32, q.device)
    k = _check_rank_size(rank_size, g.shape[0])
    return _evaluate_ranked_chunks(
        _feature_chunks(q, g, k, chunk_bytes),
        q_pids, g_pids, q_camids, g_camids, k, False, keep_ranking, "trapezoid", q.device,
        unsigned=True,  # sqdist ends with abs()
    )


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
    d = _tensor(distmat)
    k = _check_rank_size(rank_size, d.shape[1])
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
    f = _tensor(gt_features, dtype)
    idx = _tensor(gt_query_index, torch.int64, f.device)
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
    d: torch.Tensor, g: torch.Tensor, codes: _Codes, rows: slice, k: int, knn: int
) -> torch.Tensor:
    key, idx = _top_set(d, k, False)
    _, junk = codes.market_masks(idx, rows)
    # the expansion loop runs over index_max, which the script has already truncated to k
    first, col = key.masked_fill(junk, _OUT).topk(min(knn, key.shape[1]), 1, largest=False)
    score = (2 - d) / 2
    for count in range(1, first.shape[1] + 1):
        found = first[:, count - 1] != _OUT
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
    d = _tensor(dist_max, torch.float32)
    g = _tensor(gallery_features, torch.float32, d.device)
    codes = _Codes(q_pids, g_pids, q_camids, g_camids, d.device)
    step = _chunk_rows(d.shape[0], d.shape[1], k, chunk_bytes, n_scores=3)
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
    d = _tensor(dist_max, torch.float32)
    k = _check_rank_size(rank_size, d.shape[1])
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
    d = _tensor(dist_max, torch.float32)
    k = _check_rank_size(rank_size, d.shape[1])
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


# --------------------------------------------------------------------------------------------
# CUHK03, old protocol (cuhk03-prepare-eval/)
# --------------------------------------------------------------------------------------------


def evaluate_cuhk03_multishot(
    ff1: Array, ff2: Array, label1: Array, label2: Array
) -> RankingResult:
    """``eval_cuhk03.m``: every camera-1 image against all camera-2 images, then the reverse.

    Score ``f*ff'`` (cosine for unit features), stable descending sort, good = same label, no
    junk; queries are camera 1 first. ``r1/r5/r10`` equal the script's label counts; the CMC
    is as long as the larger camera.
    """
    f1, f2 = _tensor(ff1, torch.float32), _tensor(ff2, torch.float32)
    l1, l2 = _tensor(label1, torch.int64, f1.device), _tensor(label2, torch.int64, f1.device)
    aps, hits = [], []
    for fq, lq, fg, lg in ((f1, l1, f2, l2), (f2, l2, f1, l1)):
        key, idx = _top_set(fq @ fg.T, fg.shape[0], True)
        good = lg[idx] == lq[:, None]
        n_good = (lg[None, :] == lq[:, None]).sum(1)
        stats = _list_stats(key, good, torch.zeros_like(good), n_good)
        aps.append(stats.ap)
        hits.append(stats.first_hit)
    return _finish(aps, hits, max(f1.shape[0], f2.shape[0]), None)


def _identity_members(labels: np.ndarray, n_ids: int) -> list[np.ndarray]:
    members = [np.flatnonzero(labels == k) for k in range(1, n_ids + 1)]
    if any(m.size == 0 for m in members):
        # randperm(0) yields no pick: the official script fails
        raise ValueError(f"every identity 1..{n_ids} needs an image in both cameras")
    return members


def draw_cuhk03_single_shot_picks(
    label1: Array,
    label2: Array,
    rng: np.random.Generator,
    n_reps: int = 10,
    n_ids: int = 100,
) -> np.ndarray:
    """Random single-shot galleries: ``(n_reps, n1 + n2, n_ids)`` 1-based picks.

    Pick ``[t, q, k-1]`` is the position inside ``find(label_other == k)`` that
    ``randperm(numel(index100))`` puts first for repetition ``t`` and query ``q`` (camera-1
    queries first): a fresh gallery per query, as ``eval_cuhk03_100.m`` draws it.
    """
    l1, l2 = np.asarray(_np(label1)), np.asarray(_np(label2))
    c2 = np.array([m.size for m in _identity_members(l2, n_ids)])
    c1 = np.array([m.size for m in _identity_members(l1, n_ids)])
    sizes = np.concatenate([np.tile(c2, (len(l1), 1)), np.tile(c1, (len(l2), 1))])
    return rng.integers(1, sizes[None] + 1, size=(n_reps, *sizes.shape))


def cuhk03_single_shot_gallery(picks: Array, label1: Array, label2: Array) -> np.ndarray:
    """0-based image indices (in the other camera) of the picks; same shape as ``picks``."""
    p = np.asarray(_np(picks), np.int64)
    n1, n_ids = len(np.asarray(_np(label1))), p.shape[2]
    out = np.empty_like(p)
    for q_rows, labels in ((slice(0, n1), label1), (slice(n1, None), label2)):
        other = label2 if labels is label1 else label1
        members = _identity_members(np.asarray(_np(other)), n_ids)
        for k, m in enumerate(members):
            out[:, q_rows, k] = m[p[:, q_rows, k] - 1]
    return out


@dataclass(frozen=True)
class Cuhk03SingleShotResult:
    """``eval_cuhk03_10times.m`` output: per repetition and query, then as printed."""

    ap: np.ndarray  # (n_reps, n_query)
    rank: np.ndarray  # (n_reps, n_query): rank of the true match among the n_ids gallery images
    r1_r5_r10_per_rep: np.ndarray  # (n_reps, 3)
    r1_r5_r10: np.ndarray  # (3,) mean over repetitions
    mAP: float


def evaluate_cuhk03_singleshot(
    ff1: Array, ff2: Array, label1: Array, label2: Array, picks: Array
) -> Cuhk03SingleShotResult:
    """``eval_cuhk03_10times.m`` + ``eval_cuhk03_100.m`` for given (or replayed) picks.

    Gallery = one image per identity 1..n_ids from the other camera, in identity order; stable
    descending cosine ranking; the single true match gives AP 1 at rank 1, else ``1/(2 rank)``
    (``compute_AP.m`` with one good). Draw ``picks`` with
    :func:`draw_cuhk03_single_shot_picks` or replay stored ones.
    """
    f1, f2 = _tensor(ff1, torch.float32), _tensor(ff2, torch.float32)
    l1, l2 = np.asarray(_np(label1), np.int64), np.asarray(_np(label2), np.int64)
    gallery = torch.from_numpy(cuhk03_single_shot_gallery(picks, l1, l2)).to(f1.device)
    n1 = len(l1)
    n_reps, n_query, n_ids = gallery.shape
    s12, s21 = f1 @ f2.T, f2 @ f1.T
    true_pos = torch.from_numpy(np.concatenate([l1, l2]) - 1).to(f1.device)
    pos = torch.arange(n_ids, device=f1.device)
    ranks = torch.empty(n_reps, n_query, dtype=torch.int64)
    for t in range(n_reps):
        scores = torch.cat([s12.gather(1, gallery[t, :n1]), s21.gather(1, gallery[t, n1:])])
        s_true = scores.gather(1, true_pos[:, None])
        before = (scores > s_true) | ((scores == s_true) & (pos[None, :] < true_pos[:, None]))
        ranks[t] = before.sum(1).cpu() + 1
    r = ranks.double()
    prev = torch.where(r > 1, 0 / (r - 1), torch.ones_like(r))
    ap = ((1.0 / 1 - 0.0 / 1) * ((prev + 1 / r) / 2)).numpy()
    per_rep = np.stack([(ranks <= c).sum(1).numpy() / n_query for c in (1, 5, 10)], 1)
    # eval_cuhk03_10times.m accumulates rr1 = rr1 + r1/query_num, then divides by times
    acc, aap = np.zeros(3), 0.0
    for t in range(n_reps):
        acc = acc + per_rep[t]
        aap = aap + float(np.mean(ap[t]))
    return Cuhk03SingleShotResult(
        ap=ap, rank=ranks.numpy(), r1_r5_r10_per_rep=per_rep, r1_r5_r10=acc / n_reps,
        mAP=aap / n_reps,
    )


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
