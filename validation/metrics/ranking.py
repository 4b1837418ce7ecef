"""Ranking core shared by every protocol: results, distances, stable ranking, AP counting.

:class:`RankingResult`; ``sqdist.m``-style distances (:func:`sqdist`); MATLAB's stable
``sort`` as unordered top-k sets with unique order keys (:func:`rank_gallery`); the
``compute_AP.m`` / ``compute_AP_rerank.m`` arithmetic counted from those keys; chunk sizing;
the gallery id/camera tables. Scores are ranked with ties kept in gallery order.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

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
    """Per-query AP, INP and first hit, and the CMC curve, of one ranking protocol.

    ``ap`` is NaN for a query without any good gallery image (0/0 in the official code), so
    ``mAP`` is NaN as soon as one query has none, exactly like MATLAB's ``mean(ap)``.
    ``first_hit`` is the 1-based rank of the first good image counted over non-junk entries,
    0 when none is in the ranked list. ``cmc`` is averaged over ALL queries and is as long as
    the ranked list. ``ranking`` (only when asked for) holds the ranked gallery indices.

    ``inp`` is Ye et al.'s inverse negative penalty (TPAMI 2021), ``|G| / R_hard``: ``|G|``
    the query's good images in the whole gallery, ``R_hard`` the rank of the last of them over
    the same junk-filtered list as AP. When a good image is not in the ranked list (the
    official list stops at ``rank_size``, 2000), the hardest match is never retrieved and INP
    is 0, as a recall the truncated list misses adds nothing to the official AP; with
    ``rank_size=None`` this cannot happen. NaN for a query without good images (0/0).

    ``n_good`` counts each query's good images in the whole gallery. The figures a report
    shows come from :meth:`matched`: the same result over the queries that have a true match
    (torchreid's and fast-reid's rule; every query of the published test sets has one, so
    there it changes nothing).
    """

    ap: np.ndarray
    first_hit: np.ndarray
    cmc: np.ndarray
    ranking: np.ndarray | None = None
    inp: np.ndarray | None = None
    n_good: np.ndarray | None = None

    @property
    def n_query(self) -> int:
        return len(self.ap)

    @property
    def has_match(self) -> np.ndarray:
        """Boolean mask of the queries with at least one good image in the gallery."""
        if self.n_good is None:
            raise ValueError("this RankingResult was built without per-query good counts")
        return np.asarray(self.n_good) > 0

    @property
    def n_skipped(self) -> int:
        """Queries without a true match in the gallery (left out by :meth:`matched`)."""
        return int((~self.has_match).sum())

    def matched(self) -> RankingResult:
        """This result restricted to the queries that have a true match.

        Their AP, INP and first hits are unchanged; the CMC is averaged over them only, so
        every figure (mAP, mINP, rank-k) counts the same queries. With no such query the
        figures are NaN (nothing to score), never a division by zero.
        """
        keep = self.has_match
        if keep.all():
            return self
        pick = np.flatnonzero(keep)
        return RankingResult(
            ap=self.ap[pick], first_hit=self.first_hit[pick],
            cmc=cmc_curve(self.first_hit[pick], len(self.cmc)),
            ranking=None if self.ranking is None else self.ranking[pick],
            inp=None if self.inp is None else self.inp[pick], n_good=self.n_good[pick])

    @property
    def mAP(self) -> float:
        """``mean(ap)`` as the official scripts print it (NaN if any query has no good image,
        or if there is no query)."""
        return float(np.mean(self.ap)) if len(self.ap) else math.nan

    @property
    def mAP_valid(self) -> float:
        """Mean AP over the queries that have a good image (torchreid's convention)."""
        valid = ~np.isnan(self.ap)
        return float(np.mean(self.ap[valid])) if valid.any() else math.nan

    @property
    def mINP(self) -> float:
        """``mean(inp)``, a fraction like :attr:`mAP` (NaN if any query has no good image)."""
        inp = self._inp()
        return float(np.mean(inp)) if len(inp) else math.nan

    @property
    def mINP_valid(self) -> float:
        """Mean INP over the queries that have a good image (torchreid's convention)."""
        inp = self._inp()
        valid = ~np.isnan(inp)
        return float(np.mean(inp[valid])) if valid.any() else math.nan

    def _inp(self) -> np.ndarray:
        if self.inp is None:
            raise ValueError("this RankingResult was built without per-query INP")
        return self.inp

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

    @property
    def r20(self) -> float:
        return self.rank(20)


# --------------------------------------------------------------------------------------------
# Distances and stable ranking
# --------------------------------------------------------------------------------------------


def as_tensor(
    x: Array, dtype: torch.dtype | None = None, device: torch.device | None = None
) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        with warnings.catch_warnings():  # read-only arrays (datasets, memmaps): never written
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            x = torch.from_numpy(np.asarray(x))
    return x.to(device=device if device is not None else x.device, dtype=dtype or x.dtype)


def sqnorms(x: torch.Tensor, block: int = 1024) -> torch.Tensor:
    """``sum(x.*x)`` per row, by blocks: no ``x``-sized temporary (the +500k gallery is GBs).

    Blocks small enough for the temporary to stay in cache (4x faster than 4096 rows at
    d=2048); each row's sum does not depend on the block size.
    """
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[0], block):
        rows = x[start : start + block]
        torch.sum(rows * rows, 1, out=out[start : start + block])
    return out


def sqdist_into(
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
    q = as_tensor(query, torch.float32)
    g = as_tensor(gallery, torch.float32, q.device)
    out = torch.empty(q.shape[0], g.shape[0], dtype=torch.float32, device=q.device)
    return sqdist_into(out, q, g, sqnorms(q), sqnorms(g))


# Entries outside a ranked list (the (k+1)-th candidate of a top-k, padding) get this key.
OUT_OF_LIST = torch.iinfo(torch.int64).max


def _sortable_bits(x: torch.Tensor, unsigned: bool, nan_first: bool) -> torch.Tensor:
    """int32 view of float32 scores that orders exactly like MATLAB's ``sort`` compares them.

    Without sign bits (``unsigned``, e.g. after ``abs``) the raw bits already order like the
    values, at no cost. Otherwise negative values get their magnitude bits flipped, ``-0``
    becomes ``+0`` (equal in MATLAB) and NaN goes last (first for a descending sort, as in
    MATLAB). int32 top-k is also faster than float top-k.
    """
    if (unsigned or not bool(torch.signbit(x).any())) and not (
            nan_first and bool(torch.isnan(x).any())):
        return x.view(torch.int32)  # a positive NaN is above +inf: last, as in MATLAB
    bits = (x + 0.0).view(torch.int32)
    bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    nan = torch.iinfo(torch.int32).min if nan_first else torch.iinfo(torch.int32).max
    return bits.masked_fill_(torch.isnan(x), nan)


#: Rows at least this many times longer than the list go through :func:`_smallest`'s block
#: prefilter (Market-1501+500k: 520k entries for a 2001-entry list).
PREFILTER_RATIO = 64
_BLOCK = 8


def _smallest(bits: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk(bits, m, largest=False, sorted=False)`` of each row: the same values, for
    long rows faster. The row is split into ``_BLOCK`` interleaved slices and only the ``m``
    blocks with the smallest minima are searched: every block whose minimum is below the
    ``m``-th smallest minimum ``t`` is among them, and each chosen block holds an entry
    ``<= t``, so the ``m`` smallest values all lie there (at ``t`` itself, enough copies
    do). Which of several equal entries is returned is arbitrary, as with ``topk``;
    :func:`top_set` settles ties at the cut."""
    r, n = bits.shape
    if n < PREFILTER_RATIO * m or n < 2 * _BLOCK * m:
        return torch.topk(bits, m, dim=1, largest=False, sorted=False)
    nb = n // _BLOCK
    body = bits[:, : nb * _BLOCK].view(r, _BLOCK, nb)  # block b: entries b, b+nb, b+2nb...
    blocks = torch.topk(body.amin(1), m, dim=1, largest=False, sorted=False).indices
    cand = body.gather(2, blocks[:, None, :].expand(r, _BLOCK, m)).view(r, _BLOCK * m)
    vals, pos = torch.topk(cand, m, dim=1, largest=False, sorted=False)
    idx = (pos // m) * nb + blocks.gather(1, pos % m)
    if n > nb * _BLOCK:  # the last n % _BLOCK entries, in no block: merged in
        tail = torch.arange(nb * _BLOCK, n, device=bits.device).expand(r, -1)
        vals, pos = torch.topk(torch.cat([vals, bits[:, nb * _BLOCK :]], 1), m, dim=1,
                               largest=False, sorted=False)
        idx = torch.cat([idx, tail], 1).gather(1, pos)
    return vals, idx


def top_set(
    x: torch.Tensor, k: int, descending: bool, unsigned: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``k`` entries of each row in stable-sort order, as an UNORDERED set.

    Returns ``(key, idx)`` of shape ``(r, m)``, ``m >= k``: gallery indices and unique int64
    order keys (sortable value bits in the high word, gallery index in the low word, so ties
    go by gallery order); entries beyond the first ``k`` have key ``OUT_OF_LIST``. The list is never
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
    vals, idx = _smallest(bits, k + 1)
    across = (vals == vals.max(dim=1, keepdim=True).values).sum(1) > 1
    if across.any():
        exact = bits[across].sort(dim=1, stable=True)
        vals[across], idx[across] = exact.values[:, : k + 1], exact.indices[:, : k + 1]
    key = torch.add(idx, vals, alpha=2**32)  # idx + bits * 2**32, in int64
    key.scatter_(1, key.argmax(1, keepdim=True), OUT_OF_LIST)  # the (k+1)-th entry is out
    return key, idx


def ranked(key: torch.Tensor, idx: torch.Tensor, k: int) -> torch.Tensor:
    """Gallery indices ``(r, k)`` in rank order, from a :func:`top_set`."""
    return idx.gather(1, key.argsort(dim=1)[:, :k])


def stable_order(x: torch.Tensor, k: int, descending: bool) -> torch.Tensor:
    """First ``k`` gallery indices of each row in MATLAB ``sort`` order (stable)."""
    return ranked(*top_set(x, k, descending), k)


def check_rank_size(rank_size: int | None, n_gallery: int) -> int:
    if n_gallery < 1:
        raise ValueError("no gallery to rank: the gallery set is empty")
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
    s = as_tensor(scores)
    return stable_order(s, check_rank_size(rank_size, s.shape[1]), descending).cpu().numpy()


def chunk_rows(n_rows: int, n_cols: int, k: int, chunk_bytes: int, n_scores: int = 1) -> int:
    """Query rows per chunk: ``n_scores`` float32 score rows plus ~40 B per listed entry,
    balanced so that the last chunk is not a sliver (a GEMM of a few rows streams the whole
    gallery for little work)."""
    check_nonempty(n_rows, n_cols)
    per_row = 4 * n_scores * n_cols + 40 * min(k + 1, n_cols)
    step = max(1, min(n_rows, chunk_bytes // per_row))
    return -(-n_rows // -(-n_rows // step))


# --------------------------------------------------------------------------------------------
# compute_AP.m / compute_AP_rerank.m, counted from order keys
# --------------------------------------------------------------------------------------------


@dataclass
class ListStats:
    ap: torch.Tensor  # float64 (r,)
    first_hit: torch.Tensor  # int64 (r,)
    inp: torch.Tensor  # float64 (r,)
    n_good: torch.Tensor  # int64 (r,)


def list_stats(
    key: torch.Tensor,
    good: torch.Tensor,
    junk: torch.Tensor,
    n_good: torch.Tensor,
    kind: str = "trapezoid",
) -> ListStats:
    """AP, INP and first hit of ranked lists given as unordered sets: keys + good/junk masks.

    Same arithmetic as the official loop: the i-th good among non-junk entries, at non-junk
    rank r, adds ``(i/n - (i-1)/n) * ((p_prev + i/r)/2)`` with ``p_prev = (i-1)/(r-1)``, or 1
    before the first entry; ``n`` counts the goods of the WHOLE gallery, so a truncated list
    can miss recall. ``kind="noninterpolated"`` adds ``(i/r)/n`` instead (torchreid).
    Ranks are counted, not sorted: the (few) goods of each row are sorted by key, and every
    entry finds by ``searchsorted`` how many goods precede it. INP is ``n / r`` at the last
    non-junk good when all ``n`` are in the list, else 0 (see :class:`RankingResult`).
    """
    inlist = key != OUT_OF_LIST
    good, nonjunk = good & inlist, ~junk & inlist
    r, dev = key.shape[0], key.device
    # goods of each row packed left into (r, G), then sorted by key
    rows, cols = good.nonzero(as_tuple=True)
    counts = torch.bincount(rows, minlength=r)
    slot = torch.arange(rows.numel(), device=dev) - (counts.cumsum(0) - counts)[rows]
    n_slots = int(counts.max()) if rows.numel() else 0
    g_key = torch.full((r, n_slots), OUT_OF_LIST, dtype=torch.int64, device=dev)
    g_key[rows, slot] = key[rows, cols]
    g_nj = torch.zeros((r, n_slots), dtype=torch.bool, device=dev)
    g_nj[rows, slot] = nonjunk[rows, cols]
    g_key, perm = g_key.sort(dim=1)
    g_nj = g_nj.gather(1, perm)
    valid = g_key != OUT_OF_LIST
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
    # INP: |G| over the non-junk rank of the last good, if every good is in the list
    found = hit.sum(1)
    r_hard = torch.where(hit, rr, 0.0).amax(1) if n_slots else torch.zeros_like(ap)
    inp = torch.where(found == n_good, n_good.double() / r_hard.clamp(min=1), 0.0)
    inp = torch.where(n_good == 0, math.nan, inp)
    return ListStats(ap, first_hit, inp, n_good)


def cmc_curve(first_hit: np.ndarray, length: int) -> np.ndarray:
    """mean over all queries of the per-query CMC rows ``1[rank >= first_hit]`` (NaN
    without queries: nothing to average)."""
    if len(first_hit) == 0:
        return np.full(length, math.nan)
    counts = np.bincount(first_hit, minlength=length + 1)[1 : length + 1]
    return np.cumsum(counts) / len(first_hit)


def check_nonempty(n_query: int, n_gallery: int) -> None:
    """A ranking needs at least one query and one gallery image (ValueError otherwise)."""
    if n_query < 1:
        raise ValueError("no query to score: the query set is empty")
    if n_gallery < 1:
        raise ValueError("no gallery to rank: the gallery set is empty")


class Labels:
    """Gallery identity/camera table, to count each query's good and same-camera images."""

    def __init__(self, g_pids: Array, g_camids: Array) -> None:
        gp, gc = np.asarray(as_numpy(g_pids), np.int64), np.asarray(as_numpy(g_camids), np.int64)
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
        rows = self._rows(np.asarray(as_numpy(q_pids), np.int64))
        out = np.zeros((rows.shape[0], len(cams)), np.int64)
        for j, c in enumerate(cams):
            hit = np.flatnonzero(self.cams == c)
            if hit.size:
                out[:, j] = rows[:, hit[0]]
        return out

    def n_good(self, q_pids: Array, q_camids: Array) -> np.ndarray:
        """Same id and a different camera (``good_index`` of the official scripts)."""
        qp, qc = np.asarray(as_numpy(q_pids), np.int64), np.asarray(as_numpy(q_camids), np.int64)
        rows = self._rows(qp)
        return rows.sum(1) - (rows * (self.cams[None, :] == qc[:, None])).sum(1)


def as_numpy(x: Array) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


class Codes:
    """Each image's id and camera packed in one integer: one gather per ranked entry."""

    def __init__(
        self, q_pids: Array, g_pids: Array, q_camids: Array, g_camids: Array, device: torch.device
    ) -> None:
        qp, gp = np.asarray(as_numpy(q_pids), np.int64), np.asarray(as_numpy(g_pids), np.int64)
        qc, gc = np.asarray(as_numpy(q_camids), np.int64), np.asarray(as_numpy(g_camids), np.int64)
        cams = np.concatenate([qc, gc])
        if cams.size and cams.min() < 0:
            raise ValueError("camera ids must be >= 0")
        self.shift = max(1, int(cams.max(initial=0)).bit_length())
        codes = [qp, (qp << self.shift) | qc, (gp << self.shift) | gc]
        both = np.concatenate(codes)
        fits = both.size == 0 or (both.min() >= -(2**31) and both.max() < 2**31)
        dtype = torch.int32 if fits else torch.int64
        self.q_pids, self.q_codes, self.g_codes = (
            as_tensor(c, dtype, device) for c in codes
        )

    def market_masks(self, idx: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """good = same id, other camera; junk = id -1, or same id and same camera."""
        code = self.g_codes[idx]
        same_cam = code == self.q_codes[rows, None]
        pid = code >> self.shift
        return (pid == self.q_pids[rows, None]) ^ same_cam, (pid == -1) | same_cam


def finish_result(
    stats: list[ListStats], length: int, orders: list[torch.Tensor] | None
) -> RankingResult:
    first_hit = torch.cat([s.first_hit for s in stats]).cpu().numpy()
    return RankingResult(
        ap=torch.cat([s.ap for s in stats]).cpu().numpy(),
        first_hit=first_hit,
        cmc=cmc_curve(first_hit, length),
        ranking=torch.cat(orders).cpu().numpy() if orders is not None else None,
        inp=torch.cat([s.inp for s in stats]).cpu().numpy(),
        n_good=torch.cat([s.n_good for s in stats]).cpu().numpy(),
    )
