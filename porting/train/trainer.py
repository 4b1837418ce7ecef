"""One training run: setup (data, cache, model, optimiser, sampler, devices) and the epoch loop
with checkpoints, evaluation and logs."""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from porting.train.data import TrainData, load_train_data
from porting.train.distributed import barrier, setup_distributed
from porting.train.evaluate import evaluate_retrieval, validate_test_split
from porting.train.images import build_cache
from porting.train.logs import write_logs
from porting.train.loops import EpochLoops
from porting.train.model import build_model_for, check_crop, eval_preprocess, trunk_spec
from porting.train.optim import (
    CaffeSGD,
    MatConvNetSGD,
    MomentsRecorder,
    caffe_rules,
    format_schedule,
    matconvnet_rules,
)
from porting.train.pairs import (
    DXYPairSampler,
    PairSampler,
)
from porting.train.recipe import PLOT_INTERVAL_S, STAT_NAMES, TrainConfig, recipe_from
from porting.train.state import TrainingState


class Trainer(TrainingState, EpochLoops):
    """One training run (also used by ``bench/train.py``)."""

    def __init__(self, cfg: TrainConfig, data: TrainData | None = None,
                 cache: np.ndarray | None = None) -> None:
        self.cfg = cfg
        self.recipe = recipe_from(cfg)
        self.device, self.rank, self.world, self.local_rank = setup_distributed(cfg.device)
        self.main = self.rank == 0
        self.out = Path(cfg.out)
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
        r = self.recipe
        self.data = data if data is not None else load_train_data(
            cfg.data_root, cfg.dataset, holdout=r.holdout, split_seed=cfg.split_seed,
            cuhk03_split=cfg.cuhk03_split)
        self.labels = self.data.labels
        if cfg.init is None:  # a random backbone: its input sizes are known before the cache
            check_crop(trunk_spec(r.arch, r.semantics, cfg.trunk_kwargs or None)[0], r.crop)
        self._say(f"{self.data.dataset}: {len(self.labels)} training images, "
                  f"{self.data.num_ids} identities, {int((self.data.sets == 2).sum())} held out")
        if cache is None:
            self._say(f"resizing to {r.image_size}x{r.image_size} ({r.resize}"
                      f"{f', JPEG q{r.jpeg_quality}' if r.jpeg_quality else ''})")
            if cfg.cache_dir is not None and not self.main:
                barrier()  # rank 0 writes the cache first
                cache = build_cache(self.data.items, self.data.names, r.image_size, r.resize,
                                    r.jpeg_quality, cfg.workers, cfg.cache_dir)
            else:
                cache = build_cache(self.data.items, self.data.names, r.image_size, r.resize,
                                    r.jpeg_quality, cfg.workers, cfg.cache_dir,
                                    progress=not cfg.quiet and self.main)
                if cfg.cache_dir is not None:
                    barrier()
        self.cache = cache
        torch.manual_seed(cfg.seed)
        self.model, self.spec, self.init_info = build_model_for(
            r, self.data.num_ids, init=cfg.init, trunk_kwargs=cfg.trunk_kwargs or None,
            seed=cfg.seed, dropout=cfg.dropout)
        if cfg.init is not None:
            check_crop(self.spec["trunk"], r.crop)
        self.model.to(self.device)
        self._say(f"model: {self.init_info}; {sum(p.numel() for p in self.model.parameters())} "
                  "parameters")
        if r.framework == "matconvnet":
            self.rules = matconvnet_rules(self.model, backbone_lr=tuple(cfg.backbone_lr),
                                          fc751_lr=tuple(cfg.fc751_lr),
                                          fc9_lr=tuple(cfg.fc9_lr))
            self.opt: MatConvNetSGD | CaffeSGD = MatConvNetSGD(
                self.model, self.rules, r.momentum, r.weight_decay)
            self.sampler: PairSampler | DXYPairSampler = PairSampler(
                self.labels, self.data.sets, r.batch_size, cfg.seed, cfg.dividor_rule,
                r.max_offset)
            self.recorder: MomentsRecorder | None = MomentsRecorder(self.model)
            self.total_epochs = r.epochs
            self.iters_per_epoch = 0
        else:
            self.rules = caffe_rules(self.model)
            self.opt = CaffeSGD(self.model, self.rules, r.momentum, r.weight_decay)
            if not np.all(self.data.sets == 1):
                raise ValueError("caffe-dxy trains on every image (no held-out set): "
                                 "use --holdout none")
            self.sampler = DXYPairSampler(self.labels, r.batch_size, cfg.seed, r.max_offset)
            self.recorder = None
            self.iters_per_epoch = math.ceil(len(self.labels) / (r.batch_size * r.iter_size))
            self.total_epochs = math.ceil(r.max_iter / self.iters_per_epoch)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # BatchNorm moments are updated identically on every process by the optimizer,
            # so buffers need no synchronisation in forward
            sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in
                    inspect.signature(DDP.__init__).parameters else {"broadcast_buffers": False})
            self.net: nn.Module = DDP(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda"
                else None, **sync)
        else:
            self.net = self.model
        self.preprocess, self.descriptor = eval_preprocess(r)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.iteration = 0
        self._pairs_files: dict[str, Any] = {}
        self._last_plot = 0.0

    def _say(self, text: str) -> None:
        if self.main and not self.cfg.quiet:
            print(text, flush=True)

    def header(self) -> dict[str, Any]:
        r = self.recipe
        cfg = asdict(self.cfg)
        return {"config": cfg, "recipe": {**asdict(r), "lr_schedule": format_schedule(
                    list(r.lr_schedule)) if r.lr_schedule else None},
                "world_size": self.world, "device": str(self.device),
                "init": self.init_info, "num_ids": self.data.num_ids,
                "images": len(self.labels), "held_out": int((self.data.sets == 2).sum()),
                "data_signature": self.data.signature(),
                "param_rules": [asdict(x) for x in self.rules]}

    def evaluate(self, split: str, checkpoint: Path, epoch: int) -> dict[str, Any] | None:
        """Retrieval scores of the epoch's weights (rank-1 and mAP as fractions).

        The dataset's test split goes through ``validate`` itself
        (``porting.validation.cli.main`` on the checkpoint just written: the authors'
        extraction recipe, the official protocol, the published figures), its JSON kept as
        ``validate-epoch-N.json``; the held-out split, which ``validate`` does not know,
        through the same extraction and metric functions (:func:`evaluate_retrieval`).
        Without ``porting.validation``, a cosine rank-1 of this module.
        """
        if split == "test":
            return validate_test_split(self.data, checkpoint,
                                       self.out / f"validate-epoch-{epoch}.json", self.device,
                                       self.cfg.workers, self.cfg.cuhk03_split,
                                       quiet=self.cfg.quiet, main=self.main)
        return evaluate_retrieval(self.model, split, self.data, self.preprocess,
                                  self.descriptor, self.device, self.cfg.workers)

    def eval_split(self) -> str | None:
        split = self.cfg.eval_split
        if split == "none":
            return None
        if split == "auto":
            if self.data.dataset in ("market1501", "dukemtmc") and \
                    (Path(self.data.root) / "query").is_dir() and \
                    (Path(self.data.root) / "bounding_box_test").is_dir():
                return "test"
            if self.data.dataset == "cuhk03":
                return "test"  # the old protocol's test split of cuhk-03.mat, via validate
            return "heldout" if (self.data.sets == 2).any() else None
        return split

    def fit(self) -> list[dict[str, Any]]:
        cfg = self.cfg
        if cfg.resume == "auto":
            last = self.last_checkpoint()
            if last is not None:
                self.resume(last)
        elif cfg.resume != "none":
            self.resume(cfg.resume)
        header = self.header()
        split = self.eval_split()
        for epoch in range(self.epoch + 1, self.total_epochs + 1):
            if self.recipe.framework == "matconvnet":
                row = self.run_epoch_matconvnet(epoch)
            else:
                row = self.run_epoch_caffe(epoch)
            last = epoch == self.total_epochs
            self.history.append(row)
            self.epoch = epoch
            path = self.save(epoch)
            report = None  # validate's full report: printed at the end, or each time with -v
            if split and ((cfg.eval_every and epoch % cfg.eval_every == 0) or last):
                res = self.evaluate(split, path, epoch)
                report = res.pop("report", None) if res is not None else None
                if res is not None:
                    row.update({"eval_rank1": res["rank1"], "eval_mAP": res["mAP"],
                                "eval_split": split, "eval_method": res["method"]})
                    self.save(epoch)  # the checkpoint's history with this evaluation
            if self.main:
                # the PNG at every epoch, but at most once a minute for very short epochs
                plot = last or time.time() - self._last_plot > PLOT_INTERVAL_S
                write_logs(self.out, self.history, header, plot=plot)
                if plot:
                    self._last_plot = time.time()
                self._say(self._epoch_line(row))
                if report and (last or cfg.verbose):
                    self._say(f"validate, epoch {epoch}:\n{report.rstrip()}")
        for f in self._pairs_files.values():
            f.close()
        self._pairs_files = {}
        return self.history

    def _epoch_line(self, row: dict[str, Any]) -> str:
        """The epoch's figures on one line (grep-able in a log), retrieval first."""
        parts = [f"epoch {row['epoch']}: lr {row['lr']:g}"]
        if row.get("eval_rank1") is not None:
            mAP = row.get("eval_mAP")
            parts.append(f"{row['eval_split']} rank-1 {100 * row['eval_rank1']:.2f}%"
                         + (f" mAP {100 * mAP:.2f}%" if mAP is not None else ""))
        for pre in ("train", "val"):
            if row.get(f"{pre}_objective") is not None:
                parts.append(f"{pre} " + " ".join(
                    f"{s} {row[f'{pre}_{s}']:.4f}" for s in STAT_NAMES))
        parts.append(f"{row.get('pairs_per_s') or 0:.1f} pairs/s")
        return " | ".join(parts)
