"""Batches on the device: pairs of crops from the image cache, streamed ahead of the step."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from porting.train.images import assemble, to_input
from porting.train.pairs import (
    PairBatch,
)
from porting.train.recipe import TrainRecipe


@dataclass
class Step:
    """One process's share of a batch, ready for the network."""

    x1: torch.Tensor
    x2: torch.Tensor
    label: torch.Tensor
    label_2: torch.Tensor
    same: torch.Tensor
    n_global: int
    batch: PairBatch


class BatchStream:
    """Assembles the batches of an epoch in a background thread (one or two ahead).

    Each process takes its share (:meth:`PairBatch.shard`) of every global batch; on CUDA the
    uint8 crops go to pinned memory and are converted on the device.
    """

    def __init__(self, cache: np.ndarray, labels: np.ndarray, batches: list[PairBatch],
                 recipe: TrainRecipe, device: torch.device, rank: int = 0, world: int = 1,
                 depth: int = 2) -> None:
        self.cache, self.labels, self.batches = cache, labels, batches
        self.recipe, self.device, self.rank, self.world = recipe, device, rank, world
        self.mean = torch.tensor(recipe.mean, dtype=torch.float32, device=device)
        self.bgr = recipe.colour == "BGR"
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def _cpu(self, b: PairBatch) -> tuple:
        s = b.shard(self.rank, self.world)
        r = self.recipe
        c1 = assemble(self.cache, s.anchors, s.offset[0], s.flip[0], r.crop, r.framework)
        c2 = assemble(self.cache, s.partners, s.offset[1], s.flip[1], r.crop, r.framework)
        t1, t2 = torch.from_numpy(c1), torch.from_numpy(c2)
        lab = torch.from_numpy(self.labels[s.anchors])
        lab2 = torch.from_numpy(self.labels[s.partners])
        same = torch.from_numpy(s.same)
        if self.device.type == "cuda":
            t1, t2 = t1.pin_memory(), t2.pin_memory()
        else:  # convert here, off the main thread
            t1, t2 = to_input(t1, self.mean, self.bgr), to_input(t2, self.mean, self.bgr)
        return t1, t2, lab, lab2, same, len(b), b

    def _work(self) -> None:
        try:
            for b in self.batches:
                if self._stop.is_set():
                    return
                self._q.put(self._cpu(b))
        except BaseException as exc:  # surfaced in the consumer
            self._q.put(exc)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Step]:
        for _ in range(len(self.batches)):
            item = self._q.get()
            if isinstance(item, BaseException):
                raise item
            t1, t2, lab, lab2, same, n, b = item
            if self.device.type == "cuda":
                t1 = to_input(t1.to(self.device, non_blocking=True), self.mean, self.bgr)
                t2 = to_input(t2.to(self.device, non_blocking=True), self.mean, self.bgr)
            dev = self.device
            yield Step(t1, t2, lab.to(dev), lab2.to(dev), same.to(dev), n, b)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._q.get_nowait()
        self._thread.join(timeout=5)


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


