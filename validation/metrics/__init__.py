"""The official evaluation protocols of the paper's code, as pure functions on arrays.

Every function reproduces one official script of layumi/2016_person_re-ID (git 3ef47fef)
or the Oxford ``compute_ap.cpp``, including its quirks, so that ``validate`` scores features
exactly as the published numbers were scored:

* :mod:`.ranking`: :class:`RankingResult` (mAP, mINP, CMC), :func:`sqdist`, MATLAB's stable
  ranking (:func:`rank_gallery`) and the ``compute_AP.m`` arithmetic every protocol shares;
* :mod:`.market`: Market-1501 single query, ``zzd_evaluation_res_faster.m`` +
  ``compute_AP_rerank.m`` (:func:`evaluate_market`, :func:`evaluate_market_features`), and
  multi-query with its 1-NN query expansion, ``zzd_evaluation_res_fast.m``
  (:func:`pool_multi_query`, :func:`multi_query_rerank`, :func:`multi_query_lines`);
* :mod:`.cuhk03`: CUHK03 old protocol, ``eval_cuhk03.m`` and ``eval_cuhk03_10times.m`` +
  ``eval_cuhk03_100.m`` (:func:`evaluate_cuhk03_multishot`, :func:`evaluate_cuhk03_singleshot`);
* :mod:`.oxford`: Oxford5k, ``compute_ap.cpp`` (:func:`oxford_ap`, :func:`oxford_map`);
* camera pairs live in :mod:`porting.validation.camera_pairs`, Zhong et al.'s k-reciprocal
  re-ranking in :mod:`porting.validation.rerank`.

No file I/O here: callers parse names and ground-truth files and pass arrays and sets.
Scores are ranked with MATLAB's stable sort (ties keep gallery order). The Market evaluation is
vectorised over chunks of queries with torch (on the tensors' device), so its cost is dominated
by the distance matrix product itself.
"""

from .cuhk03 import (
    Cuhk03SingleShotResult,
    cuhk03_single_shot_gallery,
    draw_cuhk03_single_shot_picks,
    evaluate_cuhk03_multishot,
    evaluate_cuhk03_singleshot,
)
from .market import (
    MultiQueryLines,
    evaluate_market,
    evaluate_market_features,
    evaluate_market_noninterpolated,
    multi_query_lines,
    multi_query_rerank,
    multi_query_rerank_scores,
    pool_multi_query,
)
from .oxford import format_cout_float, oxford_ap, oxford_map
from .ranking import (
    DEFAULT_CHUNK_BYTES,
    OFFICIAL_RANK_SIZE,
    RankingResult,
    check_nonempty,
    rank_gallery,
    sqdist,
)
from .ranking import Array as Array

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "OFFICIAL_RANK_SIZE",
    "Cuhk03SingleShotResult",
    "MultiQueryLines",
    "RankingResult",
    "check_nonempty",
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

