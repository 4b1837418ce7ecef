"""CUHK03 old protocol: ``eval_cuhk03.m`` (multi-shot) and ``eval_cuhk03_10times.m`` +
``eval_cuhk03_100.m`` (single-shot with random one-image-per-identity galleries).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .ranking import (
    Array,
    RankingResult,
    as_numpy,
    as_tensor,
    check_nonempty,
    finish_result,
    list_stats,
    top_set,
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
    f1, f2 = as_tensor(ff1, torch.float32), as_tensor(ff2, torch.float32)
    check_nonempty(f1.shape[0], f2.shape[0])
    l1, l2 = as_tensor(label1, torch.int64, f1.device), as_tensor(label2, torch.int64, f1.device)
    stats = []
    for fq, lq, fg, lg in ((f1, l1, f2, l2), (f2, l2, f1, l1)):
        key, idx = top_set(fq @ fg.T, fg.shape[0], True)
        good = lg[idx] == lq[:, None]
        n_good = (lg[None, :] == lq[:, None]).sum(1)
        stats.append(list_stats(key, good, torch.zeros_like(good), n_good))
    return finish_result(stats, max(f1.shape[0], f2.shape[0]), None)


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
    l1, l2 = np.asarray(as_numpy(label1)), np.asarray(as_numpy(label2))
    c2 = np.array([m.size for m in _identity_members(l2, n_ids)])
    c1 = np.array([m.size for m in _identity_members(l1, n_ids)])
    sizes = np.concatenate([np.tile(c2, (len(l1), 1)), np.tile(c1, (len(l2), 1))])
    return rng.integers(1, sizes[None] + 1, size=(n_reps, *sizes.shape))


def cuhk03_single_shot_gallery(picks: Array, label1: Array, label2: Array) -> np.ndarray:
    """0-based image indices (in the other camera) of the picks; same shape as ``picks``."""
    p = np.asarray(as_numpy(picks), np.int64)
    n1, n_ids = len(np.asarray(as_numpy(label1))), p.shape[2]
    out = np.empty_like(p)
    for q_rows, labels in ((slice(0, n1), label1), (slice(n1, None), label2)):
        other = label2 if labels is label1 else label1
        members = _identity_members(np.asarray(as_numpy(other)), n_ids)
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
    f1, f2 = as_tensor(ff1, torch.float32), as_tensor(ff2, torch.float32)
    l1, l2 = np.asarray(as_numpy(label1), np.int64), np.asarray(as_numpy(label2), np.int64)
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
