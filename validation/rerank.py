"""k-reciprocal re-ranking (Zhong, Zheng, Cao, Li, CVPR 2017), in bounded memory.

Same semantics as the authors' ``re_ranking_ranklist.py`` (zhunzhong07/person-re-ranking):
the inputs are Euclidean distances, squared; every column of the full (query + gallery)
matrix is divided by its maximum and the matrix is transposed (row ``i`` holds column ``i``);
``V`` holds the Gaussian-weighted k-reciprocal neighbours of every image, expanded by the
candidates' ``round(k1/2)``-reciprocal sets that overlap by more than 2/3; ``k2`` averages
``V`` over each image's ``k2`` nearest; the Jaccard distance of each query to every gallery
image is ``1 - s/(2 - s)`` with ``s = sum_j min(V_qj, V_gj)``; the result is
``(1 - lambda) * jaccard + lambda * normalised_distance``.

The reference holds several dense ``(q+g)^2`` arrays (about 2.1 GB each at Market-1501
size). Here no such array exists: the normalised distance matrix is only ever formed one block
of rows at a time (for each row's top ``max(k1+1, k2)`` neighbours and the query rows), ``V``
is sparse, and the Jaccard sums are a sparse join by blocks of queries. With features the
distances are recomputed from them per block. Runs on the tensors' device.

Differences that are not semantics: ties in the initial distances go by index (a stable
sort; the reference's ``np.argsort`` picks arbitrarily among ties), and sums the reference
accumulates in float32 (weight normalisation, Jaccard overlaps) are accumulated in float64
and rounded once, so results agree with it to float32 rounding (<= 1e-6).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .metrics.ranking import Array, as_tensor, sqdist_into, sqnorms, stable_order

__all__ = ["DEFAULT_RERANK_CHUNK_BYTES", "re_rank_features", "re_ranking"]

#: Budget for one block of dense rows (distances, sort keys) or of sparse-join pairs.
DEFAULT_RERANK_CHUNK_BYTES = 256 * 2**20


# --------------------------------------------------------------------------------------------
# Squared-distance sources: blocks of rows of the transposed matrix, and single pairs
# --------------------------------------------------------------------------------------------


class _DistanceSource:
    """The authors' full matrix from its three Euclidean blocks, without concatenating them.

    Row ``i`` of the transposed matrix is column ``i`` of ``[[qq, qg], [qg^T, gg]]``.
    """

    def __init__(self, q_g: torch.Tensor, q_q: torch.Tensor, g_g: torch.Tensor) -> None:
        self.qg, self.qq, self.gg = q_g, q_q, g_g
        self.n_query, self.n = q_g.shape[0], q_g.shape[0] + q_g.shape[1]
        self.device = q_g.device
        self.pair_bytes = 4

    def rows(self, start: int, stop: int) -> torch.Tensor:
        nq = self.n_query
        if stop <= nq:
            d = torch.cat([self.qq[:, start:stop].T, self.qg[start:stop]], 1)
        else:  # callers never straddle nq
            a, b = start - nq, stop - nq
            d = torch.cat([self.qg[:, a:b].T, self.gg[:, a:b].T], 1)
        return d * d  # np.power(x, 2) in float32

    def pairs(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        nq = self.n_query
        d = torch.empty(i.shape, dtype=torch.float32, device=self.device)
        iq, jq = i < nq, j < nq
        for mask, block, r, c in (
            (iq & jq, self.qq, j, i),
            (iq & ~jq, self.qg, i, j - nq),
            (~iq & jq, self.qg, j, i - nq),
            (~iq & ~jq, self.gg, j - nq, i - nq),
        ):
            d[mask] = block[r[mask], c[mask]]
        return d * d


class _FeatureSource:
    """Squared Euclidean distances of features, ``|x|^2 + |y|^2 - 2 x.y`` (``sqdist``)."""

    def __init__(self, query: torch.Tensor, gallery: torch.Tensor) -> None:
        self.f = torch.cat([query, gallery])
        self.sq = sqnorms(self.f)
        self.n_query, self.n, self.device = query.shape[0], self.f.shape[0], self.f.device
        self.pair_bytes = 4 * self.f.shape[1]

    def rows(self, start: int, stop: int) -> torch.Tensor:
        out = torch.empty(stop - start, self.n, dtype=torch.float32, device=self.device)
        sqdist_into(out, self.f[start:stop], self.f, self.sq[start:stop], self.sq)
        idx = torch.arange(stop - start, device=self.device)
        out[idx, idx + start] = 0.0  # an image's distance to itself, as cdist gives it
        return out

    def pairs(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        dots = torch.bmm(self.f[i][:, None, :], self.f[j][:, :, None]).reshape(-1)
        d = (self.sq[i] + self.sq[j] - 2.0 * dots).abs_()
        return d.masked_fill_(i == j, 0.0)


_Source = _DistanceSource | _FeatureSource


def _row_blocks(src: _Source, chunk_bytes: int) -> Iterator[tuple[int, int]]:
    """Row blocks of about ``chunk_bytes`` (a few float32 rows each), never across queries."""
    step = max(1, chunk_bytes // (16 * src.n))
    for lo, hi in ((0, src.n_query), (src.n_query, src.n)):
        for start in range(lo, hi, step):
            yield start, min(start + step, hi)


# --------------------------------------------------------------------------------------------
# The algorithm
# --------------------------------------------------------------------------------------------


@dataclass
class _Sparse:
    """Rows of ``V`` in CSR form: row pointers, column indices, float32 values."""

    ptr: torch.Tensor  # int64 (n + 1,)
    col: torch.Tensor  # int64 (nnz,)
    val: torch.Tensor  # float32 (nnz,)

    def row_ids(self) -> torch.Tensor:
        counts = self.ptr[1:] - self.ptr[:-1]
        return torch.repeat_interleave(torch.arange(len(counts), device=self.ptr.device), counts)


def _from_rows(row: torch.Tensor, col: torch.Tensor, val: torch.Tensor, n: int) -> _Sparse:
    """CSR from entries already sorted by row."""
    ptr = torch.zeros(n + 1, dtype=torch.int64, device=row.device)
    ptr[1:] = torch.bincount(row, minlength=n).cumsum(0)
    return _Sparse(ptr, col, val)


def _initial_pass(
    src: _Source, k: int, lam: float, chunk_bytes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-``k`` neighbours of every row, each row's normaliser, and ``lambda * dist_qg``."""
    ranks = torch.empty(src.n, k, dtype=torch.int64, device=src.device)
    row_max = torch.empty(src.n, dtype=torch.float32, device=src.device)
    weighted = torch.empty(
        src.n_query, src.n - src.n_query, dtype=torch.float32, device=src.device
    )
    for start, stop in _row_blocks(src, chunk_bytes):
        a = src.rows(start, stop)
        row_max[start:stop] = a.amax(1)
        a /= row_max[start:stop, None]  # 1.*original_dist/np.max(original_dist, axis=0)
        ranks[start:stop] = stable_order(a, k, descending=False)
        if start < src.n_query:
            torch.mul(a[:, src.n_query :], lam, out=weighted[start:stop])
    return ranks, row_max, weighted


def _reciprocal(ranks: torch.Tensor, k: int, rows: torch.Tensor) -> torch.Tensor:
    """Mask over ``ranks[rows, :k+1]``: neighbours that have the row in their own top k+1."""
    forward = ranks[rows, : k + 1]
    backward = ranks[forward, : k + 1]
    return (backward == rows[:, None, None]).any(-1)


def _expanded_sets(
    ranks: torch.Tensor, k1: int, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique k-reciprocal expansion set of each row: ``(indices, valid)``, padded."""
    kh = int(np.around(k1 / 2.0))
    fwd = ranks[rows, : k1 + 1]  # (b, P)
    recip = _reciprocal(ranks, k1, rows)  # (b, P)
    cand_sets = ranks[fwd, : kh + 1]  # (b, P, H): each candidate's forward neighbours
    cand_recip = _reciprocal(ranks, kh, fwd.reshape(-1)).reshape(cand_sets.shape)
    in_set = (cand_sets[..., None] == fwd[:, None, None, :]) & recip[:, None, None, :]
    overlap = (in_set.any(-1) & cand_recip).sum(-1)
    size = cand_recip.sum(-1)
    take = recip & (overlap.double() > 2.0 / 3 * size.double())
    members = torch.cat(
        [torch.where(recip, fwd, -1), torch.where(take[..., None] & cand_recip, cand_sets, -1)
         .reshape(len(rows), -1)],
        1,
    )
    members = members.sort(1).values
    valid = members >= 0
    valid[:, 1:] &= members[:, 1:] != members[:, :-1]
    return members, valid


def _numpy_exp(x: torch.Tensor) -> torch.Tensor:
    # numpy's float32 exp is not torch's (nor correctly rounded): use it, as the reference does
    return torch.from_numpy(np.exp(x.cpu().numpy())).to(x.device)


def _pairwise_sum(a: torch.Tensor) -> torch.Tensor:
    """Row sums of ``(r, n)`` float32 in the order of numpy's ``pairwise_sum`` (np.sum)."""
    n = a.shape[1]
    if n < 8:
        res = torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
        for i in range(n):
            res = res + a[:, i]
        return res
    if n <= 128:  # eight interleaved accumulators, then the tail one by one
        m = n - n % 8
        acc = a[:, :8].clone()
        for i in range(8, m, 8):
            acc = acc + a[:, i : i + 8]
        res = ((acc[:, 0] + acc[:, 1]) + (acc[:, 2] + acc[:, 3])) + (
            (acc[:, 4] + acc[:, 5]) + (acc[:, 6] + acc[:, 7])
        )
        for i in range(m, n):
            res = res + a[:, i]
        return res
    half = n // 2
    half -= half % 8
    return _pairwise_sum(a[:, :half]) + _pairwise_sum(a[:, half:])


def _numpy_row_sums(val: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """``np.sum`` of each row of a CSR-ordered ``val`` with ``counts`` entries per row."""
    out = torch.zeros(len(counts), dtype=val.dtype, device=val.device)
    start = counts.cumsum(0) - counts
    for n in torch.unique(counts).tolist():
        if n == 0:
            continue
        rows = (counts == n).nonzero().squeeze(1)
        out[rows] = _pairwise_sum(val[start[rows, None] + torch.arange(n, device=val.device)])
    return out


def _weights(
    src: _Source, ranks: torch.Tensor, row_max: torch.Tensor, k1: int, chunk_bytes: int
) -> _Sparse:
    """``V``: ``exp(-dist)`` over each row's expansion set, normalised to sum 1."""
    rows_out, cols_out, vals_out = [], [], []
    p, h = min(k1 + 1, ranks.shape[1]), int(np.around(k1 / 2.0)) + 1
    step = max(1, chunk_bytes // (8 * p * h * (p + h)))  # bytes per row of the temporaries
    pair_step = max(1024, chunk_bytes // (16 * src.pair_bytes))
    for start in range(0, src.n, step):
        rows = torch.arange(start, min(start + step, src.n), device=src.device)
        members, valid = _expanded_sets(ranks, k1, rows)
        r, c = valid.nonzero(as_tuple=True)
        i, j = rows[r], members[r, c]
        dist = torch.empty(len(i), dtype=torch.float32, device=src.device)
        for s in range(0, len(i), pair_step):
            dist[s : s + pair_step] = src.pairs(i[s : s + pair_step], j[s : s + pair_step])
        w = _numpy_exp(-(dist / row_max[i]))
        total = _numpy_row_sums(w, valid.sum(1))
        rows_out.append(i)
        cols_out.append(j)
        vals_out.append(w / total[r])
    return _from_rows(torch.cat(rows_out), torch.cat(cols_out), torch.cat(vals_out), src.n)


def _query_expansion(v: _Sparse, ranks: torch.Tensor, k2: int, chunk_bytes: int) -> _Sparse:
    """Row ``i`` becomes the mean of the rows of its ``k2`` nearest (float32, in rank order)."""
    n, dev = len(v.ptr) - 1, v.ptr.device
    counts = v.ptr[1:] - v.ptr[:-1]
    k2 = min(k2, ranks.shape[1])
    step = max(1, chunk_bytes // (48 * k2 * max(1, int(counts.max()))))
    rows_out, cols_out, vals_out = [], [], []
    for start in range(0, n, step):
        rows = torch.arange(start, min(start + step, n), device=dev)
        nb = ranks[rows, :k2]  # (b, k2)
        lens = counts[nb].reshape(-1)
        # every entry of every neighbour row, tagged with its rank position t
        owner = torch.repeat_interleave(torch.arange(nb.numel(), device=dev), lens)
        first = (lens.cumsum(0) - lens)[owner]
        pos = v.ptr[nb.reshape(-1)][owner] + torch.arange(len(owner), device=dev) - first
        row_local, t = owner // k2, owner % k2
        key = row_local * n + v.col[pos]
        uniq, inv = torch.unique(key, return_inverse=True)
        acc = torch.zeros(len(uniq), dtype=torch.float32, device=dev)
        for step_t in range(k2):  # one add per (row, column) per step: sequential like np.mean
            sel = t == step_t
            acc.index_add_(0, inv[sel], v.val[pos[sel]])
        rows_out.append(uniq // n + start)
        cols_out.append(uniq % n)
        vals_out.append(acc / k2)
    return _from_rows(torch.cat(rows_out), torch.cat(cols_out), torch.cat(vals_out), n)


def _jaccard_into(
    out: torch.Tensor, v: _Sparse, n_query: int, lam: float, chunk_bytes: int
) -> None:
    """``out += (1 - lambda) * (1 - s/(2 - s))``, ``s`` the min-overlap of query and gallery.

    ``s[q, g] = sum_j min(V[q, j], V[g, j])`` is accumulated in float32 in increasing ``j``,
    as the reference does: step ``r`` adds every query's ``r``-th non-zero column at once.
    """
    dev, ng = out.device, out.shape[1]
    # gallery rows of V by column (the reference's invIndex), CSC
    rows = v.row_ids()
    gal = rows >= n_query
    g_row, g_col, g_val = rows[gal] - n_query, v.col[gal], v.val[gal]
    order = torch.argsort(g_col, stable=True)
    g_row, g_val = g_row[order], g_val[order]
    n = len(v.ptr) - 1
    c_ptr = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    c_ptr[1:] = torch.bincount(g_col, minlength=n).cumsum(0)
    c_len = c_ptr[1:] - c_ptr[:-1]
    step = max(1, chunk_bytes // (8 * ng))
    for start in range(0, n_query, step):
        stop = min(start + step, n_query)
        q_ptr, q_len = v.ptr[start:stop], v.ptr[start + 1 : stop + 1] - v.ptr[start:stop]
        s = torch.zeros((stop - start) * ng, dtype=torch.float32, device=dev)
        for r in range(int(q_len.max()) if stop > start else 0):
            local = (q_len > r).nonzero().squeeze(1)
            entry = q_ptr[local] + r  # each query's r-th non-zero: one add per (q, g) per step
            lens = c_len[v.col[entry]]
            owner = torch.repeat_interleave(torch.arange(len(entry), device=dev), lens)
            first = (lens.cumsum(0) - lens)[owner]
            pos = c_ptr[v.col[entry]][owner] + torch.arange(len(owner), device=dev) - first
            mins = torch.minimum(v.val[entry][owner], g_val[pos])
            s.index_add_(0, local[owner] * ng + g_row[pos], mins)
        s = s.view(stop - start, ng)
        jaccard = 1 - s / (2.0 - s)
        out[start:stop] = jaccard * (1 - lam) + out[start:stop]


def _re_rank(src: _Source, k1: int, k2: int, lam: float, chunk_bytes: int) -> np.ndarray:
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    k = min(src.n, max(k1 + 1, k2))
    ranks, row_max, out = _initial_pass(src, k, lam, chunk_bytes)
    v = _weights(src, ranks, row_max, k1, chunk_bytes)
    if k2 != 1:
        v = _query_expansion(v, ranks, k2, chunk_bytes)
    del ranks
    _jaccard_into(out, v, src.n_query, lam, chunk_bytes)
    return out.cpu().numpy()


def re_ranking(
    q_g_dist: Array,
    q_q_dist: Array,
    g_g_dist: Array,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    *,
    chunk_bytes: int = DEFAULT_RERANK_CHUNK_BYTES,
) -> np.ndarray:
    """Re-ranked ``(n_query, n_gallery)`` distances from EUCLIDEAN (not squared) distances.

    The authors' ``re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value)``: same
    arguments, same result to float32 rounding, lower memory (the three inputs plus about
    ``chunk_bytes`` and the sparse ``V``). float32, on the inputs' device.
    """
    qg = as_tensor(q_g_dist, torch.float32)
    qq = as_tensor(q_q_dist, torch.float32, qg.device)
    gg = as_tensor(g_g_dist, torch.float32, qg.device)
    nq, ng = qg.shape
    if qq.shape != (nq, nq) or gg.shape != (ng, ng):
        raise ValueError(f"shapes {tuple(qg.shape)}, {tuple(qq.shape)}, {tuple(gg.shape)} "
                         "are not (q, g), (q, q), (g, g)")
    return _re_rank(_DistanceSource(qg, qq, gg), k1, k2, lambda_value, chunk_bytes)


def re_rank_features(
    query_f: Array,
    gallery_f: Array,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    *,
    chunk_bytes: int = DEFAULT_RERANK_CHUNK_BYTES,
) -> np.ndarray:
    """:func:`re_ranking` of the Euclidean distances of features, never all held at once.

    Same as ``re_ranking(cdist(q, g), cdist(q, q), cdist(g, g), ...)`` up to float32
    rounding: squared distances are ``|x|^2 + |y|^2 - 2 x.y`` in float32 (as ``sqdist``),
    0 for an image and itself. At Market-1501 size (3,368 + 19,732 images) it needs the
    features, two ``(n_query, n_gallery)`` float32 arrays and about ``chunk_bytes`` more.
    """
    q = as_tensor(query_f, torch.float32)
    g = as_tensor(gallery_f, torch.float32, q.device)
    return _re_rank(_FeatureSource(q, g), k1, k2, lambda_value, chunk_bytes)
