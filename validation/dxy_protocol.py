"""D-X-Y's Caffe protocol (D-X-Y/caffe-reid, the ``caffe-dxy`` target), as pure functions.

* **Extraction** (``examples/market1501/testing/extract_feature.py`` as
  ``extract_prediction.sh`` runs it, i.e. without ``--center_only``): ``Classifier.predict``
  oversamples each 256x256 image into 10 crops (:func:`caffe_oversample`: 4 corners and the
  centre, then the same 5 mirrored), but the deploy net's batch is 1, so after
  ``forward_all`` the feature blob holds the LAST crop only, the mirrored centre crop
  (:data:`SAVED_CROP`). The recipe ``caffe-dxy-oversample`` (view ``"mirror"``) extracts
  exactly that crop; the blob is saved raw (no L2).
* **Evaluation** (``examples/market1501/evaluation/evaluation.m``): the Market-1501 good/junk
  sets and trapezoid ``compute_AP`` over the WHOLE gallery (no top-2000 cut), ranked ascending
  by ``cosdist`` (the script's active line) or, for the README rows labelled "[Euclidean]"
  (CaffeNet), by ``sqdist`` (the commented-out line) of the raw features
  (:func:`evaluate_dxy`).

No file I/O: callers pass arrays.
"""

from __future__ import annotations

import numpy as np
import torch

from .metrics import Array, RankingResult, evaluate_market, sqdist
from .metrics.ranking import as_tensor

__all__ = ["SAVED_CROP", "DISTANCES", "caffe_oversample", "cosine_distance", "evaluate_dxy"]

#: Index of the crop whose blob ``extract_feature.py`` saves (the 10th: mirrored centre).
SAVED_CROP = 9
DISTANCES = ("cosine", "euclidean")


def caffe_oversample(image: np.ndarray, crop: tuple[int, int]) -> np.ndarray:
    """``caffe.io.oversample([image], crop)``: ``(10, h, w, C)`` crops of an HxWxC image.

    Order: top-left, top-right, bottom-left, bottom-right, centre, then the same five
    mirrored (flipped left-right). The centre crop starts at ``int(H/2 - h/2)``, as Caffe's
    float-to-int index array truncates it.
    """
    img = np.asarray(image)
    if img.ndim != 3:
        raise ValueError(f"caffe_oversample expects an HxWxC image, got shape {img.shape}")
    (H, W), (h, w) = img.shape[:2], crop
    if h > H or w > W:
        raise ValueError(f"cannot crop {h}x{w} out of {H}x{W}")
    starts = [(0, 0), (0, W - w), (H - h, 0), (H - h, W - w),
              (int(H / 2.0 - h / 2.0), int(W / 2.0 - w / 2.0))]
    crops = np.stack([img[t:t + h, s:s + w] for t, s in starts])
    return np.concatenate([crops, crops[:, :, ::-1]])


def cosine_distance(query: Array, gallery: Array) -> torch.Tensor:
    """``1 - cos(q, g)``, ``(n_query, n_gallery)`` float32: ranks as ``cosdist`` does."""
    q = as_tensor(query, torch.float32)
    g = as_tensor(gallery, torch.float32, q.device)
    q = q / q.norm(dim=1, keepdim=True)
    g = g / g.norm(dim=1, keepdim=True)
    return 1.0 - q @ g.T


def evaluate_dxy(query_features: Array, gallery_features: Array, q_pids: Array, g_pids: Array,
                 q_camids: Array, g_camids: Array, distance: str = "cosine",
                 *, keep_ranking: bool = False) -> RankingResult:
    """``evaluation.m``: Market-1501 good/junk, trapezoid AP, whole gallery (no cut).

    ``distance="cosine"`` (the script as shipped) or ``"euclidean"`` (``sqdist`` of the raw
    features, the "[Euclidean]" rows).
    """
    if distance == "cosine":
        d = cosine_distance(query_features, gallery_features)
    elif distance == "euclidean":
        d = sqdist(query_features, gallery_features)
    else:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    return evaluate_market(d, q_pids, g_pids, q_camids, g_camids, None,
                           keep_ranking=keep_ranking)
