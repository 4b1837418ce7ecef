"""Camera-pair scores of the paper's Fig. 6: probe camera x gallery camera, Market-1501.

Reproduces ``compute_AP_multiCam.m``, ``compute_r1_multiCam.m`` and
``draw_confusion_matrix.m`` as ``zzd_evaluation_res_fast.m`` calls them (six-argument
versions, on the single-query ranking truncated to ``rank_size``), and the printed summary
``(sum - trace)/30``. Pure functions on arrays, vectorised over queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .metrics import OFFICIAL_RANK_SIZE, Array, evaluate_market
from .metrics.ranking import Labels, as_tensor, list_stats

__all__ = [
    "CameraPairResult",
    "camera_confusion_matrices",
    "camera_pair_ap",
    "camera_pair_r1",
    "evaluate_camera_pairs",
    "offdiag_mean",
]

#: Market-1501 has cameras 1..6; the official arrays are hard-coded 6 wide.
N_CAMS = 6


def _camera_blocks(
    ranking: Array, q_pids: Array, g_pids: Array, q_camids: Array, g_camids: Array, n_cams: int
) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per gallery camera c: good/junk masks in rank order and the number of goods.

    c == query camera: goods = same id and camera (``junk_image2``), junk = the ordinary goods
    and id -1. Other c: goods = same id in camera c, junk = id -1, same id in the query
    camera and same id in the other cameras. Both reduce to good = same id & camera c,
    junk = id -1 | (same id & camera != c).
    """
    order = as_tensor(ranking, torch.int64)
    dev = order.device
    qp, qc = as_tensor(q_pids, torch.int64, dev), as_tensor(q_camids, torch.int64, dev)
    gp, gc = as_tensor(g_pids, torch.int64, dev), as_tensor(g_camids, torch.int64, dev)
    cams = list(range(1, n_cams + 1))
    n_same = torch.from_numpy(Labels(g_pids, g_camids).per_camera(q_pids, cams)).to(dev)
    pid = gp[order]
    same, junk1, in_cam = pid == qp[:, None], pid == -1, gc[order]
    for j, c in enumerate(cams):
        yield j, c, qc, same & (in_cam == c), junk1 | (same & (in_cam != c)), n_same[:, j]


def camera_pair_ap(
    ranking: Array,
    q_pids: Array,
    g_pids: Array,
    q_camids: Array,
    g_camids: Array,
    n_cams: int = N_CAMS,
) -> np.ndarray:
    """``compute_AP_multiCam.m``: ``(n_query, n_cams)`` AP of each gallery camera.

    ``ranking`` is the (truncated) ranked gallery of each query (``RankingResult.ranking``).
    A cell stays 0 unless ALL its goods appear in the ranked list (the loop only stores
    ``ap`` when ``good_now == ngood``), and for cameras where the identity is absent.
    """
    out = np.zeros((len(np.asarray(q_pids)), n_cams))
    for j, _, _, good, junk, n_good in _camera_blocks(
        ranking, q_pids, g_pids, q_camids, g_camids, n_cams
    ):
        cols = torch.arange(good.shape[1], device=good.device).expand_as(good)
        stats = list_stats(cols, good, junk, n_good)
        last_good = torch.where(good, cols, -1).amax(1)
        last_nonjunk = torch.where(~junk, cols, -1).amax(1)
        # good_now == ngood is tested at non-junk entries only, after the AP update
        done = (good.sum(1) == n_good) & (n_good > 0) & (last_nonjunk >= last_good)
        out[:, j] = torch.where(done, stats.ap, 0.0).cpu().numpy()
    return out


def camera_pair_r1(
    ranking: Array,
    q_pids: Array,
    g_pids: Array,
    q_camids: Array,
    g_camids: Array,
    n_cams: int = N_CAMS,
) -> np.ndarray:
    """``compute_r1_multiCam.m``: ``(n_query, n_cams)`` rank-1 hit of each gallery camera.

    Codes: 1 hit, 0 miss (first non-junk entry is not a good), -1 the query camera holds no
    other image of the identity, -2 the identity is absent from that camera (or the list holds
    no non-junk entry).
    """
    out = np.full((len(np.asarray(q_pids)), n_cams), -2.0)
    for j, c, qc, good, junk, n_good in _camera_blocks(
        ranking, q_pids, g_pids, q_camids, g_camids, n_cams
    ):
        nonjunk = ~junk
        first = nonjunk.to(torch.uint8).argmax(1, keepdim=True)
        hit = good.gather(1, first).squeeze(1).double()
        r1 = torch.where(nonjunk.any(1), hit, -2.0)
        r1 = torch.where(n_good == 0, torch.where(qc == c, -1.0, -2.0), r1)
        out[:, j] = r1.cpu().numpy()
    return out


def camera_confusion_matrices(
    ap_pairwise: np.ndarray, r1_pairwise: np.ndarray, q_camids: Array, n_cams: int = N_CAMS
) -> tuple[np.ndarray, np.ndarray]:
    """``draw_confusion_matrix.m``: mean per (probe camera, gallery camera) cell.

    AP cells average only the NON-ZERO entries (a 0 AP is taken as "not applicable"), r1 cells
    only the entries >= 0; empty cells are 0/0 = NaN.
    """
    qc = np.asarray(q_camids, np.int64)
    ap_cm, r1_cm = np.zeros((n_cams, n_cams)), np.zeros((n_cams, n_cams))
    n_ap, n_r1 = np.zeros((n_cams, n_cams)), np.zeros((n_cams, n_cams))
    for cam in range(1, n_cams + 1):
        ap, r1 = ap_pairwise[qc == cam], r1_pairwise[qc == cam]
        ap_cm[cam - 1] = ap.sum(0)
        n_ap[cam - 1] = (ap != 0).sum(0)
        r1_cm[cam - 1] = np.where(r1 >= 0, r1, 0).sum(0)
        n_r1[cam - 1] = (r1 >= 0).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ap_cm / n_ap, r1_cm / n_r1


def offdiag_mean(cm: np.ndarray) -> float:
    """``(sum(cm(:)) - sum(diag(cm)))/30``: mean off-diagonal cell (NaN if any cell is NaN)."""
    n = cm.shape[0]
    return float((cm.sum() - np.trace(cm)) / (n * (n - 1)))


@dataclass(frozen=True)
class CameraPairResult:
    """Per-query pair scores, the two confusion matrices and their off-diagonal means."""

    ap_pairwise: np.ndarray
    r1_pairwise: np.ndarray
    ap_cm: np.ndarray
    r1_cm: np.ndarray

    @property
    def offdiag(self) -> tuple[float, float]:
        """The "average of confusion matrix" line: (mAP, r1) over the 30 cross-camera cells."""
        return offdiag_mean(self.ap_cm), offdiag_mean(self.r1_cm)


def evaluate_camera_pairs(
    distmat: Array,
    q_pids: Array,
    g_pids: Array,
    q_camids: Array,
    g_camids: Array,
    rank_size: int | None = OFFICIAL_RANK_SIZE,
    n_cams: int = N_CAMS,
) -> CameraPairResult:
    """Camera-pair AP/r1 matrices of ``zzd_evaluation_res_fast.m`` from a distance matrix."""
    ranking = evaluate_market(
        distmat, q_pids, g_pids, q_camids, g_camids, rank_size, keep_ranking=True
    ).ranking
    ap = camera_pair_ap(ranking, q_pids, g_pids, q_camids, g_camids, n_cams)
    r1 = camera_pair_r1(ranking, q_pids, g_pids, q_camids, g_camids, n_cams)
    return CameraPairResult(ap, r1, *camera_confusion_matrices(ap, r1, q_camids, n_cams))
