"""Epochs: the pair draws of an epoch streamed through the recipe's steps, validation on the held-
out pairs, the epoch's log row."""

from __future__ import annotations

import json
import time
from typing import Any

import torch

from porting.progress import Progress
from porting.train.batches import BatchStream
from porting.train.distributed import all_sum, seed_for
from porting.train.guard import check_losses
from porting.train.optim import (
    caffe_step_lr,
    matconvnet_epoch_lr,
)
from porting.train.pairs import (
    DXYPairSampler,
    PairBatch,
    PairSampler,
    dividor,
    num_positives,
)
from porting.train.recipe import STAT_NAMES
from porting.train.steps import Steps


class EpochLoops(Steps):
    """The epoch loops of :class:`~porting.train.trainer.Trainer`."""

    def _seed_epoch(self, epoch: int) -> None:
        # cnn_train_dag: rng(epoch + opts.randomSeed) at the start of every epoch; here the
        # dropout masks (torch) are seeded by (seed, epoch, rank).
        torch.manual_seed(seed_for(self.cfg.seed, epoch, 1000 + self.rank))

    def _log_pairs(self, epoch: int, split: str, step: int, b: PairBatch) -> None:
        if not self.cfg.log_pairs:
            return
        f = self._pairs_files.get(split)
        if f is None:
            f = open(self.out / f"pairs.{split}.rank{self.rank}.jsonl", "a")  # noqa: SIM115
            self._pairs_files[split] = f
        f.write(json.dumps({"epoch": epoch, "step": step, **b.to_json()}) + "\n")
        f.flush()

    def _summary(self, stats: torch.Tensor, prefix: str) -> dict[str, Any]:
        stats = all_sum(stats.detach().double(), self.device).cpu()
        n = float(stats[0])
        row: dict[str, Any] = {f"{prefix}_pairs": int(n)}
        for i, name in enumerate(STAT_NAMES, start=1):
            row[f"{prefix}_{name}"] = float(stats[i]) / n if n else None
        return row

    def _finish_train(self, row: dict[str, Any], acc: torch.Tensor, t0: float) -> None:
        """The epoch's training averages, time and throughput, into its log row."""
        row.update(self._summary(acc, "train"))
        dt = time.time() - t0
        row["time_s"] = dt
        row["pairs_per_s"] = row["train_pairs"] / dt if dt > 0 else None

    def _progress_stats(self, stats: torch.Tensor) -> dict[str, float]:
        n = float(stats[0])
        return {k: float(stats[i]) / max(n, 1.0) for i, k in enumerate(STAT_NAMES, start=1)}

    def _progress(self, n_iter: int, epoch: int) -> Progress:
        self._epoch_now, self._epoch_iter = epoch, 0
        return Progress(n_iter, f"train epoch {epoch:02d}", self.main and not self.cfg.quiet,
                        unit="it")

    def _count(self, stats: torch.Tensor, acc: torch.Tensor, prog: Progress) -> None:
        """One iteration done: its statistics into the epoch's sums, the progress line; a
        loss that is no longer finite stops the run (:mod:`porting.train.guard`)."""
        self._epoch_iter += 1
        check_losses(stats, self._epoch_now, self._epoch_iter, self.iteration + 1)
        acc += stats.double()
        self.iteration += 1
        prog.update(1)
        prog.set_postfix(self._progress_stats(acc))

    def run_epoch_matconvnet(self, epoch: int) -> dict[str, Any]:
        r = self.recipe
        assert isinstance(self.sampler, PairSampler)
        lr = matconvnet_epoch_lr(list(r.lr_schedule), epoch)
        self._seed_epoch(epoch)
        batches = self.sampler.epoch(epoch, "train")
        row: dict[str, Any] = {"epoch": epoch, "lr": lr,
                               "dividor": dividor(epoch, self.cfg.dividor_rule),
                               "positives_per_batch": num_positives(r.batch_size, epoch,
                                                                    self.cfg.dividor_rule)}
        t0 = time.time()
        self.model.train()
        stream = BatchStream(self.cache, self.labels, batches, r, self.device, self.rank,
                             self.world)
        prog = self._progress(len(batches), epoch)
        acc = torch.zeros(7, dtype=torch.float64, device=self.device)
        try:
            for i, s in enumerate(stream, start=1):
                self._log_pairs(epoch, "train", i, s.batch)
                self._count(self.train_step_matconvnet(s, lr), acc, prog)
        finally:
            stream.close()
            prog.close()
        self._finish_train(row, acc, t0)
        row.update(self.validate_epoch(epoch))
        return row

    @torch.no_grad()
    def validate_epoch(self, epoch: int) -> dict[str, Any]:
        """cnn_train_dag's ``processEpoch(.., 'val')``: the held-out anchors, same pair rule,
        ``net.mode = 'test'`` (moments, no dropout)."""
        if not isinstance(self.sampler, PairSampler) or len(self.sampler.val_index) == 0:
            return {}
        r = self.recipe
        batches = self.sampler.epoch(epoch, "val")
        self.model.eval()
        stream = BatchStream(self.cache, self.labels, batches, r, self.device, self.rank,
                             self.world)
        acc = torch.zeros(7, dtype=torch.float64, device=self.device)
        try:
            for i, s in enumerate(stream, start=1):
                self._log_pairs(epoch, "val", i, s.batch)
                _, stats = self._eval_forward(s)
                acc += stats.double()
        finally:
            stream.close()
            self.model.train()
        return self._summary(acc, "val")

    def run_epoch_caffe(self, epoch: int) -> dict[str, Any]:
        r = self.recipe
        assert isinstance(self.sampler, DXYPairSampler)
        self._seed_epoch(epoch)
        n_iter = min(self.iters_per_epoch, r.max_iter - self.iteration)
        groups = [[self.sampler.next_batch() for _ in range(r.iter_size)] for _ in range(n_iter)]
        flat = [b for g in groups for b in g]
        row: dict[str, Any] = {"epoch": epoch, "lr": caffe_step_lr(
            r.base_lr, r.gamma, r.stepsize, self.iteration),
            "dividor": (self.sampler.pos_fraction + self.sampler.neg_fraction)
            / self.sampler.pos_fraction, "positives_per_batch": None}
        t0 = time.time()
        self.model.train()
        stream = BatchStream(self.cache, self.labels, flat, r, self.device, self.rank,
                             self.world)
        prog = self._progress(n_iter, epoch)
        acc = torch.zeros(7, dtype=torch.float64, device=self.device)
        try:
            it = iter(stream)
            for i in range(1, n_iter + 1):
                steps = [next(it) for _ in range(r.iter_size)]
                for k, s in enumerate(steps):
                    self._log_pairs(epoch, "train", (i - 1) * r.iter_size + k + 1, s.batch)
                rate = caffe_step_lr(r.base_lr, r.gamma, r.stepsize, self.iteration)
                self._count(self.train_step_caffe(steps, rate), acc, prog)
        finally:
            stream.close()
            prog.close()
        self._finish_train(row, acc, t0)
        return row
