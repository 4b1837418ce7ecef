"""Retrieval evaluation during training (held-out split, or ``validate`` on the test split)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from porting.preprocess import Preprocess
from porting.train.data import TrainData
from porting.train.distributed import barrier


def evaluate_retrieval(model: nn.Module, split: str, data: TrainData, preprocess: Preprocess,
                       recipe_name: str, device: torch.device, workers: int = 0,
                       progress: bool = False) -> dict[str, Any] | None:
    """Rank-1 / mAP of the current weights.

    ``split="test"``: the dataset's query vs ``bounding_box_test`` with the official Market
    protocol; ``"heldout"``: the held-out images (queries) against the training images
    (gallery), same protocol (good = same identity in another camera). Both through
    ``porting.validation``: feature extraction as ``validate`` does it and
    ``evaluate_market_features`` (trapezoid AP, top-2000).
    """
    from porting.models import SiameseReID

    if split == "test":
        if data.dataset not in ("market1501", "dukemtmc"):
            return None
        from porting.validation.datasets import load_dukemtmc, load_market1501

        loader = load_dukemtmc if data.dataset == "dukemtmc" else load_market1501
        ds = loader(data.root, parts=("query", "gallery"), check_images="none")
        q_items, q_p, q_c = list(ds.query.paths), ds.query.pids, ds.query.camids
        g_items, g_p, g_c = list(ds.gallery.paths), ds.gallery.pids, ds.gallery.camids
    elif split == "heldout":
        qi, gi = np.flatnonzero(data.sets == 2), np.flatnonzero(data.sets == 1)
        if len(qi) == 0:
            return None
        q_items = [data.items[i] for i in qi]
        g_items = [data.items[i] for i in gi]
        q_p, q_c, g_p, g_c = data.pids[qi], data.camids[qi], data.pids[gi], data.camids[gi]
    else:
        raise ValueError(f"eval split must be 'test' or 'heldout', got {split!r}")
    net = model.module if hasattr(model, "module") else model
    assert isinstance(net, SiameseReID)
    was_training = net.training
    net.eval()
    from porting.validation.extract import extract_features
    from porting.validation.metrics import evaluate_market_features

    try:
        kw = {"batch_size": 64, "num_workers": workers, "device": device, "progress": progress}
        qf = extract_features(net, q_items, preprocess, recipe_name, desc="query", **kw)
        gf = extract_features(net, g_items, preprocess, recipe_name, desc="gallery", **kw)
        q_p, g_p, q_c, g_c = (np.array(a, dtype=np.int64) for a in (q_p, g_p, q_c, g_c))
        res = evaluate_market_features(qf, gf, q_p, g_p, q_c, g_c,
                                       rank_size=min(2000, len(g_items)))
        res = res.matched()  # rank-1 and mAP over the same queries: those with a true match
        out = {"rank1": res.r1, "mAP": res.mAP, "method":
               "porting.validation extract_features + evaluate_market_features "
               "(zzd_evaluation_res_faster.m protocol)"}
    finally:
        net.train(was_training)
    out.update({"split": split, "n_query": len(q_items), "n_gallery": len(g_items)})
    return out


def validate_test_split(data: TrainData, checkpoint: Path, out: Path, device: torch.device,
                        workers: int, cuhk03_split: int, *, quiet: bool, main: bool
                        ) -> dict[str, Any]:
    """``validate`` itself on a checkpoint just written (the authors' extraction, the official
    protocol), its JSON kept as ``out``; rank-1 and mAP as fractions, and under ``report``
    the text validate printed (the trainer decides whether to show it)."""
    from porting.validation.cli import main as validate

    argv = ["--dataset", data.dataset, "--root", data.root, "--checkpoint", str(checkpoint),
            "--json", str(out), "--device", str(device), "--workers", str(workers),
            "--cuhk03-split", str(cuhk03_split)]
    if quiet or not main:
        argv.append("-q")
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        rc = validate(argv)
    barrier()
    if rc != 0:
        raise RuntimeError(f"validate failed on {checkpoint} (exit {rc})")
    res = json.loads(out.read_text()) if out.is_file() else None
    if res is None:
        return {"rank1": None, "mAP": None, "method": "validate", "report": text.getvalue()}
    if "results" in res:  # CUHK03: the single-shot protocol (the paper's Table 4)
        res = res["results"]["single-shot"]
    return {"rank1": res["rank1"] / 100.0, "mAP": res["mAP"] / 100.0,
            "method": f"validate ({out.name})", "report": text.getvalue()}
