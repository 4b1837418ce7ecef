"""What ``validate`` runs: load a checkpoint, extract as the authors did, score every asked
protocol as the official code does. Scores are collected per protocol name (those of
:data:`porting.validation.published.PROTOCOLS`) so that each published figure is compared
with the protocol that produced it."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from porting.checkpoint import load_checkpoint
from porting.loading import model_from_checkpoint
from porting.preprocess import Preprocess
from porting.recipes import get_recipe

from . import metrics
from .camera_pairs import CameraPairResult, evaluate_camera_pairs
from .datasets import ReIDDataset, ReIDSplit
from .extract import extract_features


@dataclass
class Loaded:
    model: nn.Module
    preprocess: Preprocess
    recipe: str
    arch: str | None
    sha256: str | None
    path: str
    variant: str | None = None  # "I+V", "I", "V", "contrastive" when the checkpoint says


def load_for_validation(path: str, recipe: str | None = None) -> Loaded:
    """A checkpoint with its preprocessing, recipe and (if recognised) architecture."""
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt)
    spec = ckpt.get("preprocess")
    if spec is None:
        raise ValueError(f"{path}: the checkpoint records no preprocessing spec")
    arch = ckpt.get("arch") or {}
    name = arch.get("trunk", {}).get("name") if arch.get("name") == "siamese" else arch.get("name")
    from porting.checkpoint import sha256_file

    # train writes the registry's model name of its variant (I+V, I, V, contrastive)
    meta = ckpt.get("meta") or {}
    variant = meta.get("model_variant") if isinstance(meta, dict) else None
    loaded = Loaded(model, Preprocess.from_dict(spec), ckpt.get("recipe") or "pool5-l2", name,
                    sha256_file(path), str(path), variant if isinstance(variant, str) else None)
    if recipe is not None:
        use_recipe(loaded, recipe)
    return loaded


def recipe_preprocess(recipe: str, pre: Preprocess) -> Preprocess:
    """The image-side steps of ``recipe``'s script, from the checkpoint's own ``pre``.

    ``market-matconvnet-v1``: ``imresize(imread(p),[224 224])`` on uint8 (MATLAB bicubic),
    minus the checkpoint's mean, no flip. ``cuhk03-matconvnet``: ``prepare_test.m`` +
    ``test_cuhk03_res.m``. Other recipes keep the checkpoint's preprocessing.
    """
    if recipe == "market-matconvnet-v1":
        return dataclasses.replace(
            pre, input_size=(224, 224), resize=(224, 224), resize_method="matlab-bicubic",
            crop="none", flip=False,
            source="layumi/2016_person_re-ID v1.0 test/test_gallery_res.m: "
            "imresize(imread(path),[224 224]) on uint8; single(im) - averageImage")
    if recipe == "cuhk03-matconvnet":
        from porting.preprocess import cuhk03_matconvnet

        return cuhk03_matconvnet(mean_image=pre.mean)
    return pre


def use_recipe(loaded: Loaded, recipe: str) -> None:
    """Switch ``loaded`` to ``recipe`` (and that script's preprocessing)."""
    get_recipe(recipe)  # unknown names fail here
    if recipe != loaded.recipe:
        loaded.preprocess = recipe_preprocess(recipe, loaded.preprocess)
        loaded.recipe = recipe


@dataclass
class ExtractOptions:
    batch_size: int = 64
    num_workers: int | None = None
    device: str = "auto"
    amp: bool = False
    cache_dir: str | None = None
    features_out: str | None = None
    progress: bool = True


def extract_split(loaded: Loaded, split: ReIDSplit | list, name: str,
                  opts: ExtractOptions) -> torch.Tensor:
    out = f"{opts.features_out}_{name}" if opts.features_out else None
    return extract_features(
        loaded.model, split, loaded.preprocess, get_recipe(loaded.recipe),
        batch_size=opts.batch_size, num_workers=opts.num_workers, device=opts.device,
        amp=opts.amp, progress=opts.progress, cache_dir=opts.cache_dir,
        checkpoint_sha256=loaded.sha256, features_out=out, desc=name)


def _pct(x: float) -> float:
    return 100.0 * x


def summarize(res: metrics.RankingResult) -> dict[str, float]:
    """mAP, mINP and rank-1/5/10/20 of one protocol, in percent (NaN when not defined), over
    the queries that have a true match in the gallery (:meth:`RankingResult.matched`)."""
    res = res.matched()
    out = {"mAP": _pct(res.mAP)}
    if res.inp is not None:
        out["mINP"] = _pct(res.mINP)
    out.update({f"rank{k}": _pct(res.rank(k)) for k in (1, 5, 10, 20)})
    return out


@dataclass
class MarketResult:
    """Per-protocol summaries (percent), CMC curves (fractions) and the JSON extras."""

    single: metrics.RankingResult
    protocols: dict[str, dict[str, float]]
    curves: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    camera_pairs: CameraPairResult | None = None
    features: tuple[torch.Tensor, torch.Tensor] | None = None  # (query, gallery), if kept

    def ranked_distances(self, queries: list[int], k: int) -> dict[int, list[float]]:
        """``sqdist`` of each of ``queries`` to its first ``k`` single-query ranked gallery
        images (needs ``keep_ranking``): the distances the ranking sorted."""
        if self.features is None or self.single.ranking is None:
            raise ValueError("ranked distances need score_market(..., keep_ranking=True)")
        qf, gf = (x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
                  for x in self.features)
        out = {}
        for qi in queries:
            idx = torch.as_tensor(self.single.ranking[qi, :k], device=gf.device)
            out[qi] = metrics.sqdist(qf[qi:qi + 1], gf[idx])[0].tolist()
        return out

    @property
    def summary(self) -> dict[str, float]:
        return self.protocols["single-query"]


@dataclass(frozen=True)
class ReRank:
    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3


def _multi_query(res: MarketResult, gt_features: torch.Tensor, gf: torch.Tensor,
                 data: ReIDDataset, rank_size: int | None) -> None:
    q, g = data.query, data.gallery
    qp, qc, gp, gc = q.pids, q.camids, g.pids, g.camids
    key = {(int(p), int(c)): i for i, (p, c) in enumerate(zip(qp, qc, strict=True))}
    idx = np.asarray([key.get((int(p), int(c)), -1)
                      for p, c in zip(data.gt_bbox.pids, data.gt_bbox.camids, strict=True)])
    keep = np.flatnonzero(idx >= 0)
    pooled, feats = {}, {}
    for mode in ("max", "avg"):
        mq = metrics.pool_multi_query(gt_features[keep], idx[keep], len(qp), mode)
        r = metrics.evaluate_market_features(mq, gf, qp, gp, qc, gc, rank_size)
        pooled[mode], feats[mode] = r.matched(), mq
        res.protocols[f"multi-query {mode}"] = summarize(r)
        res.curves[f"multi-query {mode}"] = r.matched().cmc.tolist()
        res.extra[f"multi_query_{mode}"] = {"mAP": _pct(r.matched().mAP),
                                            "rank1": _pct(r.matched().rank(1)),
                                            "mINP": _pct(r.matched().mINP), "ap": r.ap.tolist()}
    lines = metrics.multi_query_lines(pooled["max"], pooled["avg"])
    for mode, (m, r1) in (("avg", lines.official_avg), ("max", lines.official_max)):
        res.protocols[f"multi-query {mode} (as printed)"] = {"mAP": _pct(m), "rank1": _pct(r1)}
    res.extra["official_printed_multi_query_lines"] = {
        k: [_pct(v) for v in getattr(lines, k)] for k in ("official_avg", "official_max")}
    qe = metrics.multi_query_rerank(metrics.sqdist(feats["max"], gf), gf, qp, gp, qc, gc,
                                    rank_size)
    res.protocols["multi-query max + 1-NN QE"] = summarize(qe)
    res.curves["multi-query max + 1-NN QE"] = qe.matched().cmc.tolist()


def _re_rank(res: MarketResult, qf: torch.Tensor, gf: torch.Tensor, data: ReIDDataset,
             rank_size: int | None, params: ReRank) -> None:
    try:
        from .rerank import re_rank_features
    except ImportError as exc:  # the module is written by another change
        raise ValueError(f"--re-rank needs porting.validation.rerank ({exc})") from None
    q, g = data.query, data.gallery
    dist = re_rank_features(qf, gf, k1=params.k1, k2=params.k2,
                            lambda_value=params.lambda_value)
    dist = torch.as_tensor(np.asarray(dist), dtype=torch.float32)
    r = metrics.evaluate_market(dist, q.pids, g.pids, q.camids, g.camids, rank_size)
    res.protocols["k-reciprocal re-ranking"] = summarize(r)
    m = r.matched()
    res.curves["k-reciprocal re-ranking"] = m.cmc.tolist()
    res.extra["re_rank"] = {"k1": params.k1, "k2": params.k2,
                            "lambda_value": params.lambda_value, "rank_size": rank_size,
                            "mAP": _pct(m.mAP), "rank1": _pct(m.rank(1)),
                            "mINP": _pct(m.mINP), "ap": r.ap.tolist(), "cmc": m.cmc.tolist(),
                            "source": "Zhong, Zheng, Cao, Li, CVPR 2017 (k-reciprocal "
                            "encoding), then the official Market-1501 scoring"}


#: Galleries from this size on (Market-1501+100k and up) show their scoring's progress.
LARGE_GALLERY = 50_000


def score_market(qf: torch.Tensor, gf: torch.Tensor, data: ReIDDataset,
                 rank_size: int | None, camera_pairs: bool = False,
                 gt_features: torch.Tensor | None = None, *, re_rank: ReRank | None = None,
                 dxy: bool = False, keep_ranking: bool = False,
                 progress: bool = False) -> MarketResult:
    """The official single-query protocol, plus multi-query (with ``gt_features``), camera
    pairs, k-reciprocal re-ranking and D-X-Y's evaluation when asked. ``progress`` shows
    the scoring of a large gallery (+500k distractors) with :class:`porting.progress.Progress`."""
    from porting.progress import Progress

    q, g = data.query, data.gallery
    qp, qc, gp, gc = q.pids, q.camids, g.pids, g.camids
    if rank_size is not None and rank_size >= len(gp):
        rank_size = None  # keeping the top n >= gallery size keeps every entry
    with Progress(len(qp), f"scoring ({len(gp):,} gallery images)", unit="query",
                  enabled=progress and len(gp) >= LARGE_GALLERY) as bar:
        single = metrics.evaluate_market_features(qf, gf, qp, gp, qc, gc, rank_size,
                                                  keep_ranking=keep_ranking,
                                                  on_rows=bar.update)
    res = MarketResult(single, {"single-query": summarize(single)},
                       {"single-query": single.matched().cmc.tolist()},
                       features=(qf, gf) if keep_ranking else None)
    if gt_features is not None and data.gt_bbox is not None:
        _multi_query(res, gt_features, gf, data, rank_size)
    if camera_pairs:
        cp = evaluate_camera_pairs(metrics.sqdist(qf, gf), qp, gp, qc, gc, rank_size)
        res.camera_pairs = cp
        res.protocols["camera pairs"] = {"mAP": _pct(cp.offdiag[0]),
                                         "rank1": _pct(cp.offdiag[1])}
        res.extra["camera_pairs"] = {"ap_cm": cp.ap_cm.tolist(), "r1_cm": cp.r1_cm.tolist(),
                                     "offdiag_mAP_r1": list(cp.offdiag)}
    if re_rank is not None:
        _re_rank(res, qf, gf, data, rank_size, re_rank)
    if dxy:
        from .dxy_protocol import evaluate_dxy

        for distance in ("cosine", "euclidean"):
            r = evaluate_dxy(qf, gf, qp, gp, qc, gc, distance)
            res.protocols[f"dxy {distance}"] = summarize(r)
            res.curves[f"dxy {distance}"] = r.matched().cmc.tolist()
    return res


def market_counts(data: ReIDDataset) -> dict[str, int]:
    """The counts :func:`~porting.validation.published.split_mismatch` compares."""
    q, g = data.query, data.gallery
    n_base = len(g.pids) - data.n_distractors
    return {"query images": len(q.pids), "gallery images": n_base,
            "query identities": len({int(p) for p in q.pids if p > 0}),
            "gallery identities": len({int(p) for p in g.pids[:n_base] if p > 0}),
            "distractors": data.n_distractors}


def cuhk03_counts(path: str) -> dict[str, int]:
    """Identities, test identities per split and splits of a ``cuhk-03.mat``."""
    from .datasets import cuhk03_counts as counts

    return counts(path)


def score_cuhk03(f1: torch.Tensor, f2: torch.Tensor, label1: np.ndarray, label2: np.ndarray,
                 seed: int, reps: int = 10) -> dict[str, dict[str, float]]:
    """Single-shot (``reps`` random 100-image galleries) and multi-shot, old protocol."""
    ms = metrics.evaluate_cuhk03_multishot(f1, f2, label1, label2)
    picks = metrics.draw_cuhk03_single_shot_picks(label1, label2, np.random.default_rng(seed),
                                                  n_reps=reps)
    ss = metrics.evaluate_cuhk03_singleshot(f1, f2, label1, label2, picks)
    out = {"multi-shot": summarize(ms)}
    r = np.asarray(ss.r1_r5_r10, dtype=float).ravel()  # fractions, as the script prints
    out["single-shot"] = {"mAP": _pct(float(ss.mAP)), "rank1": _pct(r[0]),
                          "rank5": _pct(r[1]), "rank10": _pct(r[2])}
    return out


def mean_over_splits(per_split: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """The paper's CUHK03 figure: each metric averaged over the splits (§4.1)."""
    return {proto: {m: float(np.mean([s[proto][m] for s in per_split]))
                    for m in per_split[0][proto]} for proto in per_split[0]}


def score_oxford(db: torch.Tensor, queries: torch.Tensor, data) -> dict[str, Any]:
    """``compute_ap.cpp`` per query on the database ranked by descending cosine (stable)."""
    order = torch.argsort(-(queries @ db.T), dim=1, stable=True).numpy()
    aps = []
    for q, row in zip(data.queries, order, strict=True):
        ranked = [data.images[i] for i in row]
        aps.append(metrics.oxford_ap(ranked, q.good, q.ok, q.junk))
    printed = [metrics.format_cout_float(a) for a in aps]
    return {"mAP": _pct(metrics.oxford_map(aps)), "ap": aps, "printed": printed,
            "queries": [q.name for q in data.queries]}


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


#: What ``validate --record`` keeps of its JSON payload (the per-image lists stay out).
RECORDED = ("dataset", "arch", "model", "recipe", "counts", "published_test_set", "protocols",
            "published", "units")


def record_validation(path: str, payload: dict[str, Any]) -> str:
    """``validate --record``: this run's protocol scores and its comparison with the published
    figures, as ``measurements["validate.<dataset>"]`` of the checkpoint (rewritten
    atomically, in its format), where the model card of ``porting.save_pretrained`` reads
    them. Non-finite scores are recorded as null (JSON has no NaN). Returns the key."""
    import math

    from porting.checkpoint import record_measurement

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, (np.generic, np.ndarray, torch.Tensor)):
            return plain(v.tolist())
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    key = f"validate.{payload['dataset']}"
    record_measurement(path, key, plain({k: payload.get(k) for k in RECORDED}))
    return key
