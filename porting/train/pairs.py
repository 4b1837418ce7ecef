"""Pair sampling for the paper's two-stream (identification + verification) training.

Two samplers, each a faithful reading of one source:

* :class:`PairSampler`: the authors' MatConvNet recipe, [L] ``train_id_net_res_2stream.m``
  ``getBatch`` with ``rand_same_class.m`` / ``rand_diff_class.m``, driven by
  ``cnn_train_dag.m``'s epoch loop:

  - every epoch the anchors are a random permutation of the training images
    (``params.train = opts.train(randperm(numel(opts.train)))``), cut into consecutive batches
    of ``B``; the last batch may be smaller (``batchSize = min(B, numel(subset) - t + 1)``);
  - in a batch of ``n`` anchors the first ``round(n / d)`` get a *positive* partner, the rest a
    *negative* one (``half = round(batchsize/dividor)``; ``label_f`` 1 = same, 2 = different);
  - a positive partner is drawn uniformly among the other training images of the anchor's
    identity, never the anchor itself (``rand_same_class``: redraw while ``output == index``
    or ``set ~= 1``); a negative one uniformly among the training images of every other
    identity (``rand_diff_class``: redraw while the label is the anchor's or ``set ~= 1``).
    Rejection sampling is uniform over the accepted set, so it is drawn directly here;
  - ``d = min(5, 2 * 1.01^epoch)`` with MatConvNet's 1-based epoch (the paper, Sec. 3.6:
    "initial ratio 1:1 ... multiply by 1.01 every epoch until 1:4"), which is also what the
    authors' later commits and HEAD of layumi/2016_person_re-ID write (``min``). **Only the
    first release, v1.0 (commit 4b7d7d8), writes** ``dividor = max(5, dividor*power(1.01,
    opts.epoch))``, which keeps ``d = 5`` (10 positives of 48, 1:4) for every epoch below 93,
    i.e. for the whole 75-epoch run; the model released in March 2017 was probably trained
    with that rule. ``dividor_rule="v1.0"`` (alias ``"released"``) reproduces it literally;
  - ``getBatch`` then flips each image at random (``vl_imreadjpeg(urls, 'Flip')``) and takes a
    random 224 crop at offsets ``randi(33)`` (0..32) independently for rows and columns of
    both images of the pair; those draws are part of the batch here so that every process of
    a distributed run sees the same global batch;
  - ``cnn_train_dag`` reseeds MATLAB's generator at every epoch (``rng(epoch +
    opts.randomSeed)``); likewise the draws of epoch ``e`` come from a generator seeded by
    ``(seed, e, split)``, so a run resumed at an epoch boundary draws exactly what the
    uninterrupted run draws. MATLAB's own random stream is not reproduced.

* :class:`DXYPairSampler`: D-X-Y's Caffe ``ReidData`` layer ([DXY]
  ``include/caffe/layers/reid_data_layer.hpp`` / ``src/caffe/layers/reid_data_layer.cpp``):
  anchors drawn with replacement (``RandRng() % total``); for each anchor a positive with
  probability ``pos/(pos+neg)`` (``x = RandRng() % (pos+neg)`` with ``pos, neg =
  fraction*10000``), the partner then uniform among *all* images of the anchor's identity
  (the anchor itself included: a known quirk), otherwise a different identity uniform over
  identities (``RandRng() % (labels-1)``, shifted past the anchor's) and an image uniform in
  it; every ``total`` partner draws (one "epoch") ``neg_fraction *= neg_factor`` up to
  ``neg_limit`` (1.01 and 4 in every D-X-Y prototxt; ``pos_fraction`` stays 1). The
  DataTransformer then mirrors each image at random and takes a random ``crop_size`` crop
  (offsets ``Rand(H - crop + 1)``). The generator state is part of :meth:`state_dict`.

``same`` follows :meth:`porting.models.SiameseReID.loss`: 0 = same identity, 1 = different
(MatConvNet's ``label_f`` minus one; D-X-Y's ``label_dif`` is the reverse, 1 = same).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "PairBatch",
    "PairSampler",
    "DXYPairSampler",
    "dividor",
    "num_positives",
    "matlab_round",
    "epoch_generator",
]

#: ``"released"`` is the old name of ``"v1.0"`` (kept for existing configurations).
DIVIDOR_RULES = ("paper", "v1.0", "released")


def matlab_round(x: float) -> int:
    """MATLAB ``round``: halves away from zero (Python's ``round`` goes to even)."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def dividor(epoch: int, rule: str = "paper") -> float:
    """``d`` of ``getBatch`` for a 1-based ``epoch``: ``min`` (paper, HEAD) or ``max`` (v1.0)."""
    if rule not in DIVIDOR_RULES:
        raise ValueError(f"dividor rule must be one of {DIVIDOR_RULES}, got {rule!r}")
    d = 2.0 * 1.01 ** epoch
    return min(5.0, d) if rule == "paper" else max(5.0, d)


def num_positives(batch_size: int, epoch: int, rule: str = "paper") -> int:
    """``half = round(batchsize / dividor)``: how many of the first anchors get a positive."""
    return matlab_round(batch_size / dividor(epoch, rule))


def epoch_generator(seed: int, epoch: int, stream: int) -> np.random.Generator:
    """The generator of one (epoch, stream): cnn_train_dag's ``rng(epoch + seed)`` analogue."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch, stream])))


@dataclass(frozen=True)
class PairBatch:
    """One global batch of pairs and its augmentation draws (numpy arrays, length ``n``).

    ``anchors``/``partners``: image indices; ``same``: 0 same identity / 1 different;
    ``flip``: ``(2, n)`` bools (stream 1, stream 2); ``offset``: ``(2, n, 2)`` crop offsets
    (top, left) in the resized image, in the source framework's convention (see
    :func:`porting.train.assemble`).
    """

    anchors: np.ndarray
    partners: np.ndarray
    same: np.ndarray
    flip: np.ndarray
    offset: np.ndarray

    def __len__(self) -> int:
        return len(self.anchors)

    def shard(self, rank: int, world: int) -> PairBatch:
        """The pairs of one process: positions ``rank, rank + world, ...``.

        cnn_train_dag splits a batch over GPUs the same way:
        ``subset(batchStart : numSubBatches * numlabs : batchEnd)`` with ``batchStart = t +
        labindex - 1``. One difference, deliberate: there ``getBatch`` runs on each GPU's
        share, so the positives are the first ``round(n_lab / d)`` of every share (the older
        versions of the script set ``opts.train.gpus = 2``; HEAD sets 1); here the pairs are
        drawn once for the
        global batch, so any number of processes trains on exactly the single-process pairs.
        """
        sl = slice(rank, None, world)
        return PairBatch(self.anchors[sl], self.partners[sl], self.same[sl],
                         self.flip[:, sl], self.offset[:, sl])

    def to_json(self) -> dict[str, list]:
        return {"anchors": self.anchors.tolist(), "partners": self.partners.tolist(),
                "same": self.same.tolist(), "flip": self.flip.astype(int).tolist(),
                "offset": self.offset.tolist()}


def _augment(rng: np.random.Generator, n: int, max_offset: int) -> tuple[np.ndarray, np.ndarray]:
    # getBatch: vl_imreadjpeg(im1_url,'Flip'), vl_imreadjpeg(im2_url,'Flip'), then per pair
    # x1 = randi(33); x2 = randi(33); y1 = randi(33); y2 = randi(33).
    flip = rng.random((2, n)) < 0.5
    xy = rng.integers(0, max_offset + 1, size=(n, 4))
    offset = np.stack([xy[:, [0, 2]], xy[:, [1, 3]]])  # (stream, n, [row, col])
    return flip, offset.astype(np.int64)


class PairSampler:
    """The authors' MatConvNet pair schedule (see the module docstring).

    ``labels``: 0-based identity of every image; ``sets``: 1 = training, 2 = held out
    (``imdb.images.set``). Partners are always training images (``set == 1``), for training
    and validation anchors alike, as ``rand_same_class``/``rand_diff_class`` require.
    """

    def __init__(self, labels: np.ndarray, sets: np.ndarray, batch_size: int, seed: int = 0,
                 dividor_rule: str = "paper", max_offset: int = 32) -> None:
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.sets = np.asarray(sets, dtype=np.int64).reshape(-1)
        if self.labels.shape != self.sets.shape:
            raise ValueError(f"{len(self.labels)} labels but {len(self.sets)} set flags")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if dividor_rule not in DIVIDOR_RULES:
            raise ValueError(f"dividor_rule must be one of {DIVIDOR_RULES}, got {dividor_rule!r}")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.dividor_rule = dividor_rule
        self.max_offset = int(max_offset)
        self.train_index = np.flatnonzero(self.sets == 1)
        self.val_index = np.flatnonzero(self.sets == 2)
        if len(self.train_index) == 0:
            raise ValueError("no training image (set == 1)")
        # training images grouped by label: order[start[l]:stop[l]] are label l's images
        tl = self.labels[self.train_index]
        self._order = self.train_index[np.argsort(tl, kind="stable")]
        n_labels = int(self.labels.max()) + 1
        counts = np.bincount(tl, minlength=n_labels)
        self._stop = np.cumsum(counts)
        self._start = self._stop - counts
        # where each training image sits inside its label's block (for "never itself")
        self._pos = np.full(len(self.labels), -1, dtype=np.int64)
        self._pos[self._order] = np.arange(len(self._order)) - self._start[self.labels[self._order]]
        lonely = np.flatnonzero(counts == 1)
        if len(lonely):
            raise ValueError(
                f"{len(lonely)} identities have a single training image (labels "
                f"{lonely[:5].tolist()}...): rand_same_class.m would loop forever drawing a "
                "positive partner for them; hold out fewer images or drop those identities")
        if np.any(counts == len(self._order)):
            raise ValueError("a single identity holds every training image: no negative pairs")

    def num_batches(self, split: str = "train") -> int:
        n = len(self.train_index if split == "train" else self.val_index)
        return math.ceil(n / self.batch_size)

    def positives(self, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lab = self.labels[anchors]
        start, count = self._start[lab], self._stop[lab] - self._start[lab]
        pos = self._pos[anchors]
        inside = pos >= 0  # a training anchor is excluded from its own candidates
        r = np.floor(rng.random(len(anchors)) * (count - inside)).astype(np.int64)
        r = np.where(inside & (r >= pos), r + 1, r)
        return self._order[start + r]

    def negatives(self, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lab = self.labels[anchors]
        start, count = self._start[lab], self._stop[lab] - self._start[lab]
        r = np.floor(rng.random(len(anchors)) * (len(self._order) - count)).astype(np.int64)
        r = np.where(r >= start, r + count, r)
        return self._order[r]

    def make_batch(self, anchors: np.ndarray, epoch: int, rng: np.random.Generator) -> PairBatch:
        n = len(anchors)
        half = num_positives(n, epoch, self.dividor_rule)
        partners = np.concatenate([self.positives(anchors[:half], rng),
                                   self.negatives(anchors[half:], rng)])
        same = np.concatenate([np.zeros(half, np.int64), np.ones(n - half, np.int64)])
        flip, offset = _augment(rng, n, self.max_offset)
        return PairBatch(anchors.astype(np.int64), partners, same, flip, offset)

    def epoch(self, epoch: int, split: str = "train") -> list[PairBatch]:
        """Every batch of one (1-based) epoch, in order; deterministic in (seed, epoch)."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        rng = epoch_generator(self.seed, epoch, 0 if split == "train" else 1)
        index = self.train_index if split == "train" else self.val_index
        order = index[rng.permutation(len(index))]
        return [self.make_batch(order[t:t + self.batch_size], epoch, rng)
                for t in range(0, len(order), self.batch_size)]

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "matconvnet", "seed": self.seed, "batch_size": self.batch_size,
                "dividor_rule": self.dividor_rule, "max_offset": self.max_offset}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "matconvnet":
            raise ValueError(f"not a MatConvNet pair sampler state: {state.get('kind')!r}")
        for key in ("seed", "batch_size", "dividor_rule", "max_offset"):
            if state[key] != getattr(self, key):
                raise ValueError(f"pair sampler {key} differs from the checkpoint's: "
                                 f"{getattr(self, key)!r} != {state[key]!r}")


class DXYPairSampler:
    """D-X-Y's ``ReidData`` pair draws, with the layer's state (see the module docstring)."""

    def __init__(self, labels: np.ndarray, batch_size: int, seed: int = 0,
                 max_offset: int = 32, pos_fraction: float = 1.0, neg_fraction: float = 1.0,
                 pos_factor: float = 1.0, neg_factor: float = 1.01, pos_limit: float = 1.0,
                 neg_limit: float = 4.0) -> None:
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(self.labels) == 0:
            raise ValueError("no training image")
        n_labels = int(self.labels.max()) + 1
        counts = np.bincount(self.labels, minlength=n_labels)
        if np.any(counts == 0):
            raise ValueError(f"ReidData requires labels 0..{n_labels - 1} without gaps "
                             f"(CHECK_GT(label_set[i].size(), 0)); missing "
                             f"{np.flatnonzero(counts == 0)[:5].tolist()}")
        if n_labels < 2:
            raise ValueError("ReidData needs at least two identities")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.max_offset = int(max_offset)
        self._order = np.argsort(self.labels, kind="stable")
        self._stop = np.cumsum(counts)
        self._start = self._stop - counts
        self.pos_factor, self.neg_factor = float(pos_factor), float(neg_factor)
        self.pos_limit, self.neg_limit = float(pos_limit), float(neg_limit)
        self.pos_fraction = float(pos_fraction)
        # DataLayerSetUp copies pos_fraction into neg_fraction (harmless: both are 1 in
        # every D-X-Y prototxt); reproduced.
        self.neg_fraction = float(pos_fraction)
        self.left_images = len(self.labels)
        self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 7])))

    def _pair(self, label: int) -> int:
        self.left_images -= 1
        if self.left_images <= 0:
            self.left_images = len(self.labels)
            self.pos_fraction = min(self.pos_fraction * self.pos_factor, self.pos_limit)
            self.neg_fraction = min(self.neg_fraction * self.neg_factor, self.neg_limit)
        pos, neg = int(self.pos_fraction * 10000), int(self.neg_fraction * 10000)
        x = int(self.rng.integers(0, pos + neg))
        if x < pos:
            other = label
        else:
            other = int(self.rng.integers(0, len(self._start) - 1))
            if other >= label:
                other += 1
        start, stop = self._start[other], self._stop[other]
        return int(self._order[start + int(self.rng.integers(0, stop - start))])

    def next_batch(self) -> PairBatch:
        n = self.batch_size
        anchors = self.rng.integers(0, len(self.labels), size=n).astype(np.int64)
        partners = np.array([self._pair(int(self.labels[a])) for a in anchors], dtype=np.int64)
        same = (self.labels[anchors] != self.labels[partners]).astype(np.int64)
        # DataTransformer::Transform: do_mirror = Rand(2), then h_off, w_off = Rand(H-crop+1)
        flip, offset = _augment(self.rng, n, self.max_offset)
        return PairBatch(anchors, partners, same, flip, offset)

    def state_dict(self) -> dict[str, Any]:
        st = self.rng.bit_generator.state
        return {"kind": "dxy", "seed": self.seed, "batch_size": self.batch_size,
                "max_offset": self.max_offset, "pos_fraction": self.pos_fraction,
                "neg_fraction": self.neg_fraction, "left_images": self.left_images,
                # 128-bit integers as text: checkpoints are read with weights_only=True
                "rng": {"state": str(st["state"]["state"]), "inc": str(st["state"]["inc"]),
                        "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"])}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "dxy":
            raise ValueError(f"not a D-X-Y pair sampler state: {state.get('kind')!r}")
        for key in ("seed", "batch_size", "max_offset"):
            if state[key] != getattr(self, key):
                raise ValueError(f"pair sampler {key} differs from the checkpoint's: "
                                 f"{getattr(self, key)!r} != {state[key]!r}")
        self.pos_fraction = float(state["pos_fraction"])
        self.neg_fraction = float(state["neg_fraction"])
        self.left_images = int(state["left_images"])
        r = state["rng"]
        self.rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": int(r["state"]), "inc": int(r["inc"])},
            "has_uint32": int(r["has_uint32"]), "uinteger": int(r["uinteger"])}
