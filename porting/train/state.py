"""The training state in checkpoints: save every epoch, find the last one, resume exactly."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from porting.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from porting.train.distributed import barrier
from porting.train.guard import check_weights
from porting.train.recipe import VARIANT_MODEL

_EPOCH = re.compile(r"net-epoch-(\d+)\.(pth|safetensors)$")


class TrainingState:
    """Checkpointing of :class:`~porting.train.trainer.Trainer` (``saveState`` /
    ``findLastCheckpoint``)."""

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        r = self.recipe
        ck = make_checkpoint(
            self.model.state_dict(), arch=self.spec, preprocess=self.preprocess.to_dict(),
            recipe=self.descriptor,
            source={"trained_with": "porting.train", "recipe": r.name, "recipe_source": r.source,
                    "init": self.init_info, "dataset": self.data.dataset},
            meta={"training_recipe": r.name, "epoch": epoch, "iteration": self.iteration,
                  "num_ids": self.data.num_ids, "feature_var": "pool5" if r.arch == "resnet50"
                  else "fc7", "two_stream": True,
                  "loss_weights": dict(zip(("objective", "objective_2", "objective_final"),
                                           r.loss_weights, strict=True)),
                  "losses": r.losses, "verification": r.verification,
                  # the registry's model name (porting.validation.published) it should reach
                  "model_variant": VARIANT_MODEL[(r.losses, r.verification)],
                  "label_pids": [int(p) for p in self._label_pids()],
                  "stats": self.history[-1] if self.history else {}})
        ck["training"] = {
            "epoch": epoch, "iteration": self.iteration,
            "optimizer": self.opt.state_dict(), "sampler": self.sampler.state_dict(),
            "config": json.loads(json.dumps(asdict(self.cfg), default=str)),
            "recipe": json.loads(json.dumps(asdict(r), default=str)),
            "data_signature": self.data.signature(), "history": self.history,
            "world_size": self.world}
        return ck

    def _label_pids(self) -> np.ndarray:
        out = np.zeros(self.data.num_ids, dtype=np.int64)
        out[self.labels] = self.data.pids
        return out

    def save(self, epoch: int) -> Path:
        path = self.out / f"net-epoch-{epoch}.{self.cfg.checkpoint_format}"
        check_weights(self.model.state_dict().items(), epoch)  # the last file stays finite
        if self.main:
            save_checkpoint(path, self.checkpoint(epoch))
            if self.cfg.keep_last > 0:
                for old in self.out.glob("net-epoch-*"):
                    m = _EPOCH.match(old.name)
                    if m and int(m.group(1)) <= epoch - self.cfg.keep_last:
                        old.unlink()
        barrier()
        return path

    def last_checkpoint(self) -> Path | None:
        """cnn_train_dag's ``findLastCheckpoint``: the highest ``net-epoch-N``."""
        best = None
        for p in self.out.glob("net-epoch-*"):  # either format
            m = _EPOCH.match(p.name)
            if m and (best is None or int(m.group(1)) > best[0]):
                best = (int(m.group(1)), p)
        return best[1] if best else None

    def resume(self, path: str | os.PathLike) -> None:
        ck = load_checkpoint(path)
        tr = ck.get("training")
        if not isinstance(tr, dict):
            raise ValueError(f"{path}: not a porting.train checkpoint (no 'training' state)")
        if tr["data_signature"] != self.data.signature():
            raise ValueError(f"{path}: trained on another image list / split")
        mine, theirs = asdict(self.recipe), tr["recipe"]
        for key in ("name", "framework", "arch", "batch_size", "iter_size", "crop",
                    "image_size", "semantics"):
            if json.loads(json.dumps(mine[key])) != theirs[key]:
                raise ValueError(f"{path}: recipe {key} {theirs[key]!r} differs from this run's "
                                 f"{mine[key]!r}")
        if ck["arch"] != json.loads(json.dumps(self.spec)):
            raise ValueError(f"{path}: architecture {ck['arch']} differs from {self.spec}")
        self.model.load_state_dict(ck["state_dict"])
        self.opt.load_state_dict(tr["optimizer"])
        self.sampler.load_state_dict(tr["sampler"])
        self.epoch = int(tr["epoch"])
        self.iteration = int(tr["iteration"])
        self.history = list(tr["history"])
        self._say(f"resuming by loading epoch {self.epoch} ({path})")
