"""Training data: the dataset listing (:mod:`porting.validation.datasets`, the project's one
listing of Market-1501, DukeMTMC-reID and CUHK03), labels in file order and the authors'
held-out set (``prepare_data.m``, ``prepare_imdb.m``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from porting.train.pairs import matlab_round


@dataclass
class TrainData:
    """The training images with labels and the held-out flags.

    ``items``: paths (or uint8 arrays / a lazy sequence for CUHK03); ``labels``: 0-based;
    ``sets``: 1 training, 2 held out; ``camids``: 1-based camera (0 when unknown).
    """

    items: Sequence[Any]
    names: list[str]
    pids: np.ndarray
    camids: np.ndarray
    labels: np.ndarray
    sets: np.ndarray
    dataset: str
    root: str

    @property
    def num_ids(self) -> int:
        return int(self.labels.max()) + 1

    def signature(self) -> str:
        h = hashlib.sha256()
        for name, lab, s in zip(self.names, self.labels.tolist(), self.sets.tolist(),
                                strict=True):
            h.update(f"{name}:{lab}:{s}\n".encode())
        return h.hexdigest()[:16]


def labels_in_file_order(prefixes: Sequence[str]) -> np.ndarray:
    """``prepare_data.m``: a new class each time the name's first ``_`` field changes, in
    ``dir()`` order; 0-based here (MATLAB 1..K)."""
    out = np.zeros(len(prefixes), dtype=np.int64)
    cls, last = -1, None
    for i, p in enumerate(prefixes):
        if p != last:
            cls, last = cls + 1, p
        out[i] = cls
    return out


#: Hold-out rules of the authors' data preparation: images of an identity with fewer than
#: ``min_images`` images go back to training. Market-1501 / DukeMTMC-reID (``prepare_data.m``)
#: use 10 with the per-identity counts shifted by the script's bookkeeping so that the last
#: identity always counts 9 (``cc = [cc; 9]``); CUHK03 (``cuhk03-prepare-eval/prepare_imdb.m``)
#: uses ``cc < 9`` on the true per-identity counts.
HOLDOUT_RULES: dict[str, dict[str, Any]] = {
    "market": {"min_images": 10, "last_counts_9": True},
    "cuhk03": {"min_images": 9, "last_counts_9": False},
}


def matconvnet_holdout(labels: np.ndarray, seed: int = 0, rule: str = "market") -> np.ndarray:
    """The authors' held-out flags (1 training, 2 validation), see :data:`HOLDOUT_RULES`.

    ``s`` images; ``round(0.1*s)`` indices drawn uniformly *with replacement* (``randi``) get
    set 2; then an index whose identity has too few images goes back to 1. MATLAB's generator
    is not reproduced (numpy, ``seed``).
    """
    if rule not in HOLDOUT_RULES:
        raise ValueError(f"unknown hold-out rule {rule!r}; expected one of {list(HOLDOUT_RULES)}")
    spec = HOLDOUT_RULES[rule]
    labels = np.asarray(labels, dtype=np.int64)
    s = len(labels)
    sets = np.ones(s, dtype=np.int64)
    if s == 0:
        return sets
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 11])))
    sets[rng.integers(0, s, size=matlab_round(0.1 * s))] = 2
    cc = np.bincount(labels).astype(np.int64)
    if spec["last_counts_9"]:
        cc[-1] = 9
    sets[(sets == 2) & (cc[labels] < spec["min_images"])] = 1
    return sets


def load_train_data(root: str | os.PathLike, dataset: str = "market1501", holdout: bool = True,
                    split_seed: int = 0, cuhk03_split: int = 6) -> TrainData:
    """Training images of a Market-1501-layout dataset (``market1501``, ``dukemtmc``:
    ``bounding_box_train`` as :mod:`porting.validation.datasets` lists it) or of
    ``cuhk-03.mat`` (``cuhk03``, old protocol, labels as ``prepare_imdb.m``)."""
    from porting.validation.datasets import load_cuhk03_train, load_dukemtmc, load_market1501

    if dataset in ("market1501", "dukemtmc"):
        loader = load_market1501 if dataset == "market1501" else load_dukemtmc
        ds = loader(root, parts=("train",), check_images="none")
        split = ds.train
        if split is None or len(split) == 0:
            raise ValueError(f"{ds.root}: bounding_box_train holds no image")
        items: Sequence[Any] = list(split.paths)
        names = list(split.names)
        pids, cams = np.asarray(split.pids), np.asarray(split.camids)
        labels = labels_in_file_order([n.split("_")[0] for n in names])
        root_s, rule = str(ds.root), "market"
    elif dataset == "cuhk03":
        items, lab = load_cuhk03_train(root, split=cuhk03_split)
        labels = np.asarray(lab, dtype=np.int64) - 1
        names = list(items.names)
        pids = labels + 1
        cams = np.array([1 if int(n.split("_")[2]) == 1 else 2 for n in names])
        root_s, rule = str(root), "cuhk03"
    else:
        raise ValueError(f"unknown dataset {dataset!r}; expected market1501, dukemtmc, cuhk03")
    sets = (matconvnet_holdout(labels, split_seed, rule) if holdout
            else np.ones(len(labels), np.int64))
    return TrainData(items, names, np.asarray(pids), np.asarray(cams), labels, sets, dataset,
                     root_s)
