"""What ``validate`` runs: load a checkpoint, extract as the authors did, score as the
official code does, and compare with the published figures."""

from __future__ import annotations

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
from .camera_pairs import evaluate_camera_pairs
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

    return Loaded(model, Preprocess.from_dict(spec), recipe or ckpt.get("recipe") or "pool5-l2",
                  name, sha256_file(path), str(path))


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


@dataclass
class MarketResult:
    single: metrics.RankingResult
    summary: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)


def score_market(qf: torch.Tensor, gf: torch.Tensor, data: ReIDDataset,
                 rank_size: int | None, camera_pairs: bool = False,
                 gt_features: torch.Tensor | None = None) -> MarketResult:
    """The official single-query protocol (+ multi-query and camera pairs when asked)."""
    q, g = data.query, data.gallery
    qp, qc, gp, gc = q.pids, q.camids, g.pids, g.camids
    if rank_size is not None and rank_size >= len(gp):
        rank_size = None  # keeping the top n >= gallery size keeps every entry
    res = metrics.evaluate_market_features(qf, gf, qp, gp, qc, gc, rank_size)
    summary = {"mAP": _pct(res.mAP), "rank1": _pct(res.rank(1)), "rank5": _pct(res.rank(5)),
               "rank10": _pct(res.rank(10))}
    extra: dict[str, Any] = {}
    if gt_features is not None and data.gt_bbox is not None:
        key = {(int(p), int(c)): i for i, (p, c) in enumerate(zip(qp, qc, strict=True))}
        idx = [key.get((int(p), int(c)), -1) for p, c in zip(data.gt_bbox.pids,
                                                            data.gt_bbox.camids, strict=True)]
        keep = [i for i, k in enumerate(idx) if k >= 0]
        pooled = {}
        for mode in ("max", "avg"):
            mq = metrics.pool_multi_query(gt_features[keep], np.asarray(idx)[keep], len(qp),
                                          mode)
            r = metrics.evaluate_market_features(mq, gf, qp, gp, qc, gc, rank_size)
            pooled[mode] = r
            extra[f"multi_query_{mode}"] = {"mAP": _pct(r.mAP), "rank1": _pct(r.rank(1))}
        lines = metrics.multi_query_lines(pooled["max"], pooled["avg"])
        extra["official_printed_multi_query_lines"] = {
            k: [_pct(v) for v in getattr(lines, k)] for k in ("official_avg", "official_max")}
    if camera_pairs:
        d = metrics.sqdist(qf, gf)
        cp = evaluate_camera_pairs(d, qp, gp, qc, gc, rank_size)
        extra["camera_pairs"] = {"ap_cm": cp.ap_cm.tolist(), "r1_cm": cp.r1_cm.tolist(),
                                 "offdiag_mAP_r1": list(cp.offdiag)}
    return MarketResult(res, summary, extra)


def score_cuhk03(f1: torch.Tensor, f2: torch.Tensor, label1: np.ndarray, label2: np.ndarray,
                 seed: int, reps: int = 10) -> dict[str, dict[str, float]]:
    """Single-shot (``reps`` random 100-image galleries) and multi-shot, old protocol."""
    ms = metrics.evaluate_cuhk03_multishot(f1, f2, label1, label2)
    picks = metrics.draw_cuhk03_single_shot_picks(label1, label2, np.random.default_rng(seed),
                                                  n_reps=reps)
    ss = metrics.evaluate_cuhk03_singleshot(f1, f2, label1, label2, picks)
    out = {"multi-shot": {"mAP": _pct(ms.mAP), "rank1": _pct(ms.rank(1)),
                          "rank5": _pct(ms.rank(5)), "rank10": _pct(ms.rank(10))}}
    r = np.asarray(ss.r1_r5_r10, dtype=float).ravel()  # fractions, as the script prints
    out["single-shot"] = {"mAP": _pct(float(ss.mAP)), "rank1": _pct(r[0]),
                          "rank5": _pct(r[1]), "rank10": _pct(r[2])}
    return out


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

