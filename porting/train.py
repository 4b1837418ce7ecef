"""``train``: the paper's siamese training recipe, faithfully, on one device or many.

``train DATA_ROOT --out DIR [--arch resnet50|caffenet|vgg16] [--recipe matconvnet|caffe-dxy]
[--init CONVERTED.pth] ...``, or ``torchrun --nproc_per_node N -m porting.train ...``.

Two recipes, each documented against its source (SOURCES.md sections 2.3, 2.4, 2.7):

``matconvnet`` (alias ``market-matconvnet``; the authors' code, [L] git 3ef47fef):

* **data** (``prepare_data.m``): the training images in ``dir()`` order, labels 1..K by
  identity in file order (0-based here); every image resized once to 256x256 with MATLAB's
  bicubic ``imresize`` on uint8 (:func:`porting.imresize.imresize`) and re-saved as JPEG
  (``imwrite``, MATLAB's default quality 75; re-encoded here with Pillow, ``--jpeg-quality 0``
  skips it); ``set(randi(s, [round(0.1*s), 1])) = 2`` holds out about 10% (drawn *with*
  replacement, so a little under 10%) and puts back the images of identities with fewer than
  10 images; the last identity never gets a held-out image (``cc = [cc; 9]``), reproduced;
* **batches** (``train_id_net_res_2stream.m`` ``getBatch``, ``cnn_train_dag.m``): see
  :mod:`porting.pairs`; random flip (``vl_imreadjpeg(.., 'Flip')``, applied to the 256 image
  before the crop), random 224 crop with offsets 0..32 (227 and 0..29 for CaffeNet), minus
  the Market mean ``[105.6920, 99.1345, 97.9152]`` (RGB, 0-255, no std), both streams;
* **model** (``resnet52_market.m``, ``resnet52_2stream.m``): one shared trunk, dropout 0.9 +
  ``fc751`` (1x1 conv to the number of identities) per stream, Square, dropout 0.9 + ``fc9``;
  new convolutions initialised by the bundled ``initParams.m``: ``U(-1,1) * sqrt(3/(h*w*in))``,
  times 0.1 when a Loss layer follows (both heads), zero biases;
* **loss**: ``dagnn.Loss('softmaxlog')`` *summed* over the batch, derOutputs 0.5 / 0.5 / 1;
* **optimiser**: :class:`porting.optim.MatConvNetSGD` with the multipliers of
  :func:`porting.optim.matconvnet_rules`, momentum 0.9, weight decay 5e-4 (cnn_train_dag
  defaults; the script sets 0.0005), gradients divided by the number of pairs;
  BatchNorm as MatConvNet trains it: batch moments ``sigma = sqrt(var + eps)`` in training
  mode, ``moments`` updated by the ``'average'`` method;
* **schedule**: ResNet-50 75 epochs at ``[0.1 x 70, 0.01 x 5]``, batch 48 (the script);
  CaffeNet 155 epochs, batch 128; VGG16 65 epochs, batch 48 (the paper, Sec. 3.6; no code was
  released for them: the rates follow the ResNet script, ``[0.1 x (E-5), 0.01 x 5]`` with the
  same multiplier rule);
* **validation** each epoch on the held-out images, in MatConvNet's ``'test'`` mode (moments,
  no dropout), with the same pair draws (``processEpoch(.., 'val')``).

``caffe-dxy`` (D-X-Y's Caffe re-implementation, [DXY] git 7468850a, ``generate_*.py``,
``model_libs.py``, ``reid_data_layer.*``, ``solver.proto``):

* every training image (``train.lst``, no held-out set), OpenCV-style bilinear resize to
  256x256 (``ReadImageToCVMat``; see :func:`opencv_resize_linear`), BGR, random mirror and a
  random 224 crop (227 CaffeNet) after it, minus ``mean_value [97.8286, 99.0468, 105.606]``;
* pairs from :class:`porting.pairs.DXYPairSampler`; batch 16 pairs with ``iter_size`` 4
  (ResNet-50), 36 x 3 (VGG16), 128 x 1 (CaffeNet);
* ``SoftmaxWithLoss`` means: identification over the 2B images with weight 1, verification
  over the B pairs with weight 0.5 (``SiameseReID.loss(weights=(0.5, 0.5, 0.5),
  reduction="mean")`` is exactly that); no dropout in the ResNet head (CaffeNet/VGG16 keep
  ``drop6``/``drop7``); heads ``gaussian std 0.01``; BatchNorm frozen
  (``use_global_stats: true``), Scale layers trained;
* :class:`porting.optim.CaffeSGD`, ``base_lr 0.001``, ``lr_policy step``, ``gamma 0.1``,
  ``stepsize 16000``, ``max_iter 18000``, momentum 0.9, weight decay 5e-4; an "epoch" here is
  ``ceil(images / (batch * iter_size))`` iterations (checkpoint period).

Several processes (``torchrun``): every process draws the same global batch (pairs, flips,
crops) and takes the pairs ``rank, rank + world, ...`` (cnn_train_dag's split over GPUs);
gradients and BatchNorm moment ders are summed over processes and divided by the global
batch, so the update is the single-process one. BatchNorm statistics in the forward pass are
per process, as on MatConvNet's multiple GPUs (the authors used two): with BatchNorm, N
processes equal one process only up to that.

Around both: a checkpoint per epoch (``net-epoch-N.pth``, the project's format, loadable by
``porting.load``/``validate``, with the optimizer momenta, sampler state, epoch and history
like MatConvNet's ``saveState``), automatic resume from the last one (``cnn_train_dag``'s
``opts.continue = true``), ``log.csv``/``log.json``/``curves.png``, progress lines, seeded
determinism, DistributedDataParallel under torchrun with the same global batch and pairs,
and a retrieval evaluation every ``--eval-every`` epochs and at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import inspect
import io
import json
import math
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from porting.checkpoint import atomic_write, load_checkpoint, make_checkpoint, save_checkpoint
from porting.optim import (
    CaffeSGD,
    MatConvNetSGD,
    MomentsRecorder,
    caffe_rules,
    caffe_step_lr,
    format_schedule,
    freeze_caffe_batchnorm,
    matconvnet_epoch_lr,
    matconvnet_rules,
    parse_schedule,
)
from porting.pairs import (
    DXYPairSampler,
    PairBatch,
    PairSampler,
    dividor,
    matlab_round,
    num_positives,
)
from porting.preprocess import DXY_BGR_MEAN, MARKET_RGB_MEAN, Preprocess, load_rgb

__all__ = [
    "TrainRecipe",
    "get_train_recipe",
    "TrainData",
    "load_train_data",
    "matconvnet_holdout",
    "labels_in_file_order",
    "build_cache",
    "opencv_resize_linear",
    "assemble",
    "BatchStream",
    "build_model_for",
    "Trainer",
    "build_parser",
    "main",
]

STAT_NAMES = ("objective", "objective_2", "objective_final", "top1err", "top1err_2",
              "top1err_compare")
CACHE_VERSION = 1
PLOT_INTERVAL_S = 60.0


# --------------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainRecipe:
    """Everything the two recipes fix; see the module docstring for the sources."""

    name: str
    framework: str  # "matconvnet" | "caffe"
    arch: str
    batch_size: int
    iter_size: int = 1
    lr_schedule: tuple[float, ...] = ()  # MatConvNet: global rate per epoch
    base_lr: float = 0.0  # Caffe
    gamma: float = 0.1
    stepsize: int = 0
    max_iter: int = 0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    loss_weights: tuple[float, float, float] = (0.5, 0.5, 1.0)
    reduction: str = "sum"
    dropout: float = 0.9
    image_size: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = MARKET_RGB_MEAN
    colour: str = "RGB"
    resize: str = "matlab-bicubic"
    jpeg_quality: int = 75
    holdout: bool = True
    semantics: str = "matconvnet"
    source: str = ""

    @property
    def max_offset(self) -> int:
        return self.image_size - self.crop

    @property
    def epochs(self) -> int:
        return len(self.lr_schedule)


def get_train_recipe(name: str, arch: str) -> TrainRecipe:
    """The recipe ``name`` (``matconvnet``/``market-matconvnet`` or ``caffe-dxy``) for
    ``arch`` (``resnet50``, ``caffenet``, ``vgg16``)."""
    if arch not in ("resnet50", "caffenet", "vgg16"):
        raise ValueError(f"unknown arch {arch!r}; expected resnet50, caffenet or vgg16")
    crop = 227 if arch == "caffenet" else 224
    if name in ("matconvnet", "market-matconvnet"):
        epochs, batch = {"resnet50": (75, 48), "caffenet": (155, 128), "vgg16": (65, 48)}[arch]
        src = ("layumi/2016_person_re-ID train_id_net_res_2stream.m, resnet52_market.m, "
               "resnet52_2stream.m, prepare_data.m, examples/cnn_train_dag.m" if arch ==
               "resnet50" else "paper Sec. 3.6 (epochs, batch); rates, multipliers and data as "
               "the authors' ResNet-50 scripts (no CaffeNet/VGG16 code was released)")
        return TrainRecipe(
            name="matconvnet", framework="matconvnet", arch=arch, batch_size=batch,
            lr_schedule=tuple([0.1] * (epochs - 5) + [0.01] * 5), crop=crop, source=src)
    if name == "caffe-dxy":
        batch, iters = {"resnet50": (16, 4), "vgg16": (36, 3), "caffenet": (128, 1)}[arch]
        return TrainRecipe(
            name="caffe-dxy", framework="caffe", arch=arch, batch_size=batch, iter_size=iters,
            base_lr=0.001, gamma=0.1, stepsize=16000, max_iter=18000,
            loss_weights=(0.5, 0.5, 0.5), reduction="mean", dropout=0.0, crop=crop,
            mean=DXY_BGR_MEAN, colour="BGR", resize="opencv-bilinear", jpeg_quality=0,
            holdout=False, semantics="caffe",
            source=f"D-X-Y/caffe-reid (read via zhunzhong07/caffe-reid) models/market1501/"
                   f"generate_{arch}.py, python/caffe/model_libs.py, reid_data_layer.*, "
                   "solver.proto")
    raise ValueError(f"unknown recipe {name!r}; expected 'matconvnet' or 'caffe-dxy'")


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


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


def matconvnet_holdout(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """``prepare_data.m``'s held-out flags (1 training, 2 validation), see the module docstring.

    ``s`` images; ``round(0.1*s)`` indices drawn uniformly *with replacement* (``randi``) get
    set 2; then an index whose identity has fewer than 10 images goes back to 1, where the
    per-identity counts ``cc`` are shifted by the script's bookkeeping so that the *last*
    identity always counts 9. MATLAB's generator is not reproduced (numpy, ``seed``).
    """
    labels = np.asarray(labels, dtype=np.int64)
    s = len(labels)
    sets = np.ones(s, dtype=np.int64)
    if s == 0:
        return sets
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 11])))
    sets[rng.integers(0, s, size=matlab_round(0.1 * s))] = 2
    cc = np.bincount(labels).astype(np.int64)
    cc[-1] = 9
    sets[(sets == 2) & (cc[labels] < 10)] = 1
    return sets


def _list_market_folder(folder: Path) -> tuple[list[Path], list[str], np.ndarray, np.ndarray]:
    try:
        from porting.validation.datasets import MARKET_NAME, list_reid_folder
    except ImportError:  # the dataset module is optional for training
        names = sorted((p.name for p in folder.glob("*.jpg")), key=os.fsencode)
        if not folder.is_dir():
            raise FileNotFoundError(f"missing folder {folder}") from None
        pids, cams = [], []
        for n in names:
            m = re.match(r"^(-1|\d+)_c(\d)", n)
            if m is None:
                raise ValueError(f"unexpected file name {folder / n}") from None
            pids.append(int(m.group(1)))
            cams.append(int(m.group(2)))
        return [folder / n for n in names], names, np.array(pids), np.array(cams)
    split, _ = list_reid_folder(folder, MARKET_NAME)
    return list(split.paths), list(split.names), np.asarray(split.pids), \
        np.asarray(split.camids)


def _resolve_market_root(root: Path) -> Path:
    for cand in (root, root / "Market-1501-v15.09.15", root / "Market-1501",
                 root / "market1501", root / "DukeMTMC-reID"):
        if (cand / "bounding_box_train").is_dir():
            return cand
    raise FileNotFoundError(f"{root}: no bounding_box_train folder (Market-1501 layout)")


def load_train_data(root: str | os.PathLike, dataset: str = "market1501", holdout: bool = True,
                    split_seed: int = 0, cuhk03_split: int = 6) -> TrainData:
    """Training images of a Market-1501-layout dataset (``market1501``, ``dukemtmc``) or of
    ``cuhk-03.mat`` (``cuhk03``, old protocol, labels as ``prepare_imdb.m``)."""
    if dataset in ("market1501", "dukemtmc"):
        base = _resolve_market_root(Path(root))
        if dataset == "dukemtmc":
            try:
                from porting.validation.datasets import DUKE_NAME, list_reid_folder

                split, _ = list_reid_folder(base / "bounding_box_train", DUKE_NAME)
                paths, names = list(split.paths), list(split.names)
                pids, cams = np.asarray(split.pids), np.asarray(split.camids)
            except ImportError:
                paths, names, pids, cams = _list_market_folder(base / "bounding_box_train")
        else:
            paths, names, pids, cams = _list_market_folder(base / "bounding_box_train")
        if not paths:
            raise ValueError(f"{base / 'bounding_box_train'} holds no image")
        labels = labels_in_file_order([n.split("_")[0] for n in names])
        items: Sequence[Any] = paths
        root_s = str(base)
    elif dataset == "cuhk03":
        from porting.validation.datasets import load_cuhk03_train

        items, lab = load_cuhk03_train(root, split=cuhk03_split)
        labels = np.asarray(lab, dtype=np.int64) - 1
        names = list(items.names)
        pids = labels + 1
        cams = np.array([1 if int(n.split("_")[2]) == 1 else 2 for n in names])
        root_s = str(root)
    else:
        raise ValueError(f"unknown dataset {dataset!r}; expected market1501, dukemtmc, cuhk03")
    sets = matconvnet_holdout(labels, split_seed) if holdout else np.ones(len(labels), np.int64)
    return TrainData(items, names, np.asarray(pids), np.asarray(cams), labels, sets, dataset,
                     root_s)


def opencv_resize_linear(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv::resize(.., INTER_LINEAR)`` of a uint8 image as Caffe's ``ReadImageToCVMat`` does.

    Half-pixel centres (``fx = (dx + 0.5) * in/out - 0.5``), a source index below 0 clamped to
    0 and one at the last pixel or beyond using the last pixel only, as OpenCV's
    ``resize`` computes its tables. OpenCV evaluates the two passes in 11-bit fixed point
    (and differently in its SIMD paths, depending on the build), which this float version
    does not reproduce: values may differ by one grey level.
    """
    img = np.asarray(img)
    out_h, out_w = size

    def table(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        s = np.floor(f).astype(np.int64)
        a = f - s
        low = s < 0
        a[low], s[low] = 0.0, 0
        high = s >= n_in - 1
        a[high], s[high] = 0.0, n_in - 1
        return s, np.minimum(s + 1, n_in - 1), a

    y0, y1, ay = table(img.shape[0], out_h)
    x0, x1, ax = table(img.shape[1], out_w)
    x = img.astype(np.float64)
    rows = x[y0] * (1 - ay)[:, None, None] + x[y1] * ay[:, None, None]
    out = rows[:, x0] * (1 - ax)[None, :, None] + rows[:, x1] * ax[None, :, None]
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def _jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _prepare_image(item: Any, size: int, method: str, jpeg_quality: int) -> np.ndarray:
    from porting.imresize import imresize

    rgb = load_rgb(item)
    if method == "matlab-bicubic":
        out = imresize(rgb, (size, size), "bicubic")
    elif method == "opencv-bilinear":
        out = opencv_resize_linear(rgb, (size, size))
    else:
        raise ValueError(f"unknown resize method {method!r}")
    if jpeg_quality:
        out = _jpeg_roundtrip(out, jpeg_quality)
    return out


def _items_digest(items: Sequence[Any], names: Sequence[str]) -> str:
    h = hashlib.sha256()
    for item, name in zip(items, names, strict=True):
        if isinstance(item, (str, os.PathLike)):
            st = os.stat(item)
            h.update(f"{os.fspath(item)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        else:
            h.update(f"{name}\n".encode())
    token = getattr(items, "cache_token", None)
    if callable(token):
        h.update(token().encode())
    return h.hexdigest()


def build_cache(items: Sequence[Any], names: Sequence[str], size: int, method: str,
                jpeg_quality: int, workers: int = 0, cache_dir: str | os.PathLike | None = None,
                progress: bool = False) -> np.ndarray:
    """All training images resized once: ``(N, size, size, 3)`` uint8 RGB.

    ``prepare_data.m`` writes ``bounding_box_train_256`` once; likewise, with ``cache_dir``
    the array is stored as ``.npy`` (keyed by the file list, sizes, mtimes and settings) and
    memory-mapped by later runs and by the other processes of a distributed run.
    """
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(
            f"v{CACHE_VERSION}:{size}:{method}:{jpeg_quality}:{_items_digest(items, names)}"
            .encode()).hexdigest()[:24]
        path = Path(cache_dir) / f"train-images-{key}.npy"
        if path.is_file():
            arr = np.load(path, mmap_mode="r")
            if arr.shape == (len(items), size, size, 3):
                return arr
    out = np.empty((len(items), size, size, 3), dtype=np.uint8)
    t0 = time.time()

    def one(i: int) -> None:
        out[i] = _prepare_image(items[i], size, method, jpeg_quality)

    n_workers = workers if workers > 0 else min(8, os.cpu_count() or 1)
    if n_workers > 1 and len(items) > 1:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            for done, _ in enumerate(pool.map(one, range(len(items))), start=1):
                if progress and (done % 500 == 0 or done == len(items)):
                    print(f"resizing training images: {done}/{len(items)} "
                          f"({time.time() - t0:.0f} s)", flush=True)
    else:
        for i in range(len(items)):
            one(i)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: np.save(open(tmp, "wb"), out))  # noqa: SIM115
    return out


def assemble(cache: np.ndarray, index: np.ndarray, offset: np.ndarray, flip: np.ndarray,
             crop: int, framework: str) -> np.ndarray:
    """Crops ``(n, crop, crop, 3)`` uint8 of the cached images.

    MatConvNet (``getBatch``): ``vl_imreadjpeg(.., 'Flip')`` mirrors the whole 256 image, then
    ``tim(x:x+223, y:y+223, :)`` crops it, so a mirrored crop at column offset ``y`` comes from
    columns ``W - crop - y ..`` of the unmirrored image. Caffe (``DataTransformer``): the crop
    is taken at ``(h_off, w_off)`` and then mirrored.
    """
    n = len(index)
    out = np.empty((n, crop, crop, 3), dtype=np.uint8)
    width = cache.shape[2]
    for k in range(n):
        top, left = int(offset[k, 0]), int(offset[k, 1])
        if flip[k] and framework == "matconvnet":
            left = width - crop - left
        patch = cache[int(index[k]), top:top + crop, left:left + crop]
        out[k] = patch[:, ::-1] if flip[k] else patch
    return out


def to_input(batch_u8: torch.Tensor, mean: torch.Tensor, bgr: bool) -> torch.Tensor:
    """uint8 NHWC RGB to the network's float32 NCHW input: ``single(crop) - averageImage``
    (MatConvNet) or ``(pixel - mean_value)`` in BGR (Caffe)."""
    x = batch_u8.permute(0, 3, 1, 2).float()
    if bgr:
        x = x.flip(1)
    return (x - mean.view(1, 3, 1, 1)).contiguous(memory_format=torch.contiguous_format)


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


def trunk_spec(arch: str, semantics: str, trunk_kwargs: dict[str, Any] | None = None
               ) -> tuple[dict[str, Any], int]:
    """Spec of a backbone without its classifier, and its feature width."""
    kw = dict(trunk_kwargs or {})
    kw.update({"semantics": semantics, "num_classes": None})
    if arch == "resnet50":
        feat = 32 * int(kw.get("width", 64))
    elif arch in ("caffenet", "vgg16"):
        feat = int(kw.get("fc_width", 4096))
        if "widths" in kw:
            kw["widths"] = list(kw["widths"])
    else:
        raise ValueError(f"unknown arch {arch!r}")
    return {"name": arch, "kwargs": kw}, feat


def _init_conv_matconvnet(conv: nn.Conv2d, gen: torch.Generator, scale: float = 1.0) -> None:
    # initParams.m: sc = sqrt(3/(h*w*in)); (rand*2-1)*sc; biases zero; "in" = size(3) =
    # input channels per group.
    fan_in = conv.weight.shape[1] * conv.weight.shape[2] * conv.weight.shape[3]
    sc = math.sqrt(3.0 / fan_in)
    with torch.no_grad():
        conv.weight.copy_((torch.rand(conv.weight.shape, generator=gen) * 2 - 1) * sc * scale)
        if conv.bias is not None:
            conv.bias.zero_()


def init_random_trunk(trunk: nn.Module, framework: str, gen: torch.Generator) -> None:
    """Random backbone (no ImageNet checkpoint): not the paper's recipe, for tests and ablations.

    Convolutions as the sources initialise new layers: MatConvNet's bundled ``initParams.m``
    ``U(-1,1)*sqrt(3/(h*w*in))`` and Caffe's ``xavier`` (D-X-Y's conv layers, the same
    distribution); D-X-Y's fully connected layers ``gaussian std 0.01``. BatchNorm: unit
    scale, zero shift, moments ``[0, 1]`` (``initParams.m`` would give zero moments, i.e.
    ``sigma = 0``, used in test mode).
    """
    from porting.layers import InnerProduct

    for mod in trunk.modules():
        if isinstance(mod, InnerProduct):
            with torch.no_grad():
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * 0.01)
                mod.bias.zero_()
        elif isinstance(mod, nn.Conv2d):
            _init_conv_matconvnet(mod, gen)


def init_heads(model: nn.Module, framework: str, gen: torch.Generator) -> None:
    """``fc751`` and ``fc9`` as the sources initialise them.

    MatConvNet (``initParams.m``): a new dagnn.Conv followed by a Loss layer gets
    ``U(-1,1)*sqrt(3/(h*w*in)) * 0.1`` and zero bias (both heads are). Caffe (D-X-Y
    ``fc_relu(.., is_train=True)``): ``gaussian std 0.01``, bias ``constant 0``.
    """
    for conv in (model.fc751, model.fc9):
        if framework == "matconvnet":
            _init_conv_matconvnet(conv, gen, scale=0.1)
        else:
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.01)
                conv.bias.zero_()


def backbone_from_checkpoint(path: str | os.PathLike, arch: str, semantics: str
                             ) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """The backbone of any checkpoint the converters produce: ``(trunk spec, state_dict,
    description)``.

    Loaded as ``porting.load(path, canonical=True)`` does; an ImageNet model loses its
    classifier (``fc1000``/``fc8``: ``resnet52_market.m`` removes ``fc1000`` and ``prob``),
    a two-stream model gives its shared trunk. Heads are always re-initialised.
    """
    from porting.loading import model_from_checkpoint
    from porting.models import SiameseReID

    ckpt = load_checkpoint(path)
    arch_spec = ckpt.get("arch")
    if arch_spec is None:
        raise ValueError(f"{path}: the checkpoint has no canonical architecture ('arch'); "
                         "convert it with --arch auto")
    model = model_from_checkpoint(ckpt, canonical=True)
    if isinstance(model, SiameseReID):
        spec = dict(arch_spec["trunk"])
        sd = {k: v for k, v in model.trunk.state_dict().items()}
        what = "trunk of a two-stream checkpoint"
    else:
        spec = {"name": arch_spec["name"], "kwargs": dict(arch_spec.get("kwargs", {}))}
        spec["kwargs"]["num_classes"] = None
        sd = {k: v for k, v in model.state_dict().items()
              if not k.startswith(("fc1000.", "fc8."))}
        what = "backbone without its classifier (fc1000/fc8)"
    if spec["name"] != arch:
        raise ValueError(f"{path}: holds a {spec['name']}, but --arch is {arch}")
    sem = spec["kwargs"].get("semantics")
    if sem != semantics:
        raise ValueError(
            f"{path}: a {sem}-semantics {arch}, but this recipe trains the {semantics} layers "
            f"(convert the {'MatConvNet .mat' if semantics == 'matconvnet' else 'caffemodel'} "
            "starting point instead, or pick the other --recipe)")
    return spec, sd, f"{what} from {path}"


def build_model_for(recipe: TrainRecipe, num_ids: int, *, init: str | None = None,
                    trunk_kwargs: dict[str, Any] | None = None, seed: int = 0,
                    dropout: float | None = None) -> tuple[nn.Module, dict[str, Any], str]:
    """The :class:`~porting.models.SiameseReID` to train, its arch spec and where its trunk
    came from."""
    from porting.models import build_model

    gen = torch.Generator().manual_seed(int(seed))
    if init:
        tspec, tsd, how = backbone_from_checkpoint(init, recipe.arch, recipe.semantics)
        if trunk_kwargs:
            raise ValueError("--trunk-kwargs/--width apply to a random backbone, not to --init")
    else:
        tspec, _ = trunk_spec(recipe.arch, recipe.semantics, trunk_kwargs)
        tsd, how = None, "random backbone (no --init): not the paper's ImageNet start"
    _, feat = trunk_spec(recipe.arch, recipe.semantics, tspec["kwargs"])
    spec = {"name": "siamese", "trunk": tspec,
            "kwargs": {"feat_dim": feat, "num_ids": int(num_ids),
                       "dropout": float(recipe.dropout if dropout is None else dropout)}}
    model = build_model(spec)
    if tsd is not None:
        missing, unexpected = model.trunk.load_state_dict(tsd, strict=False)
        if missing or unexpected:
            raise ValueError(f"backbone weights do not fit: missing {missing[:4]}, "
                             f"unexpected {unexpected[:4]}")
    else:
        init_random_trunk(model.trunk, recipe.framework, gen)
    init_heads(model, recipe.framework, gen)
    if recipe.framework == "caffe":
        freeze_caffe_batchnorm(model)
    return model, spec, how


def eval_preprocess(recipe: TrainRecipe) -> tuple[Preprocess, str]:
    """The checkpoint's test-time preprocessing and descriptor recipe.

    ResNet-50 (MatConvNet): the authors' ``test_gallery_query_crazy.m`` (256x256, flip,
    per-position L2; :func:`porting.preprocess.market_matconvnet`). CaffeNet/VGG16
    (MatConvNet): no test code was released; 256 resize then the centre crop of the training
    size, fc7, L2 (``pool5-l2``). D-X-Y: ``extract_feature.py --center_only``
    (:func:`porting.preprocess.caffe_dxy`).
    """
    from porting.preprocess import caffe_dxy, market_matconvnet

    if recipe.framework == "caffe":
        return caffe_dxy(recipe.crop), "caffe-dxy"
    if recipe.arch == "resnet50":
        return market_matconvnet(), "market-matconvnet"
    pre = Preprocess(
        input_size=(recipe.crop, recipe.crop), resize=(recipe.image_size, recipe.image_size),
        resize_method="matlab-bicubic", crop="center", mean=recipe.mean, colour="RGB",
        value_range=255.0, flip=False,
        source=f"porting.train ({recipe.arch}, MatConvNet recipe): imresize to "
               f"{recipe.image_size} on uint8, centre {recipe.crop} crop (the training crop "
               "size), minus the Market mean; the authors released no test code for it")
    return pre, "pool5-l2"


# --------------------------------------------------------------------------------------------
# Distributed helpers
# --------------------------------------------------------------------------------------------


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def setup_distributed(device_arg: str) -> tuple[torch.device, int, int, int]:
    """``(device, rank, world, local_rank)``; torchrun's env:// group (NCCL on CUDA, Gloo on
    CPU)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device_arg == "auto":
        device_arg = "cuda" if torch.cuda.is_available() else "cpu"
    if device_arg.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda but torch.cuda.is_available() is False")
    device = torch.device(f"cuda:{local}" if device_arg == "cuda" and world > 1 else device_arg)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if world > 1:
        return device, dist.get_rank(), dist.get_world_size(), local
    return device, 0, 1, 0


def _comm_device(device: torch.device) -> torch.device:
    d = _dist()
    return device if d is not None and d.get_backend() == "nccl" else torch.device("cpu")


def _all_sum(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    d = _dist()
    if d is None:
        return t
    c = t.to(_comm_device(device))
    d.all_reduce(c)
    return c.to(t.device)


def _barrier() -> None:
    d = _dist()
    if d is not None:
        d.barrier()


def _seed_for(seed: int, *keys: int) -> int:
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)[0]
               % (2**63 - 1))


# --------------------------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------------------------


def _csv_columns() -> list[str]:
    cols = ["epoch", "lr", "dividor", "positives_per_batch", "train_pairs"]
    cols += [f"train_{s}" for s in STAT_NAMES] + ["val_pairs"] + [f"val_{s}" for s in STAT_NAMES]
    return cols + ["eval_rank1", "eval_mAP", "eval_split", "time_s", "pairs_per_s"]


def write_logs(out: Path, history: list[dict[str, Any]], header: dict[str, Any],
               plot: bool = True) -> None:
    """``log.csv`` (one row per epoch), ``log.json`` (config, recipe, rules, history) and
    ``curves.png``."""
    cols = _csv_columns()

    def w_csv(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            wr.writeheader()
            for row in history:
                wr.writerow({c: ("" if row.get(c) is None else row.get(c)) for c in cols})

    atomic_write(out / "log.csv", w_csv)
    text = json.dumps({**header, "history": history}, indent=1, default=str)
    atomic_write(out / "log.json", lambda tmp: Path(tmp).write_text(text))
    if plot:
        plot_curves(out / "curves.png", history)


def plot_curves(path: Path, history: list[dict[str, Any]]) -> None:
    """Losses and errors per epoch, train vs held-out (cnn_train_dag's ``net-train.pdf``)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    has_eval = any(h.get("eval_rank1") is not None for h in history)
    fig, axes = plt.subplots(1, 3 if has_eval else 2, figsize=(15 if has_eval else 10, 4))
    for ax, group, title in ((axes[0], STAT_NAMES[:3], "loss (per pair)"),
                             (axes[1], STAT_NAMES[3:], "error")):
        for i, s in enumerate(group):
            color = f"C{i}"
            ax.plot(ep, [h.get(f"train_{s}") for h in history], "o-", color=color,
                    label=f"train {s}", markersize=3)
            val = [h.get(f"val_{s}") for h in history]
            if any(v is not None for v in val):
                ax.plot(ep, [np.nan if v is None else v for v in val], "s--", color=color,
                        label=f"val {s}", markersize=3)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(True)
        ax.legend(fontsize=7)
    if has_eval:
        pts = [(h["epoch"], h["eval_rank1"], h.get("eval_mAP")) for h in history
               if h.get("eval_rank1") is not None]
        axes[2].plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="rank-1")
        axes[2].plot([p[0] for p in pts], [np.nan if p[2] is None else p[2] for p in pts],
                     "s-", label="mAP")
        axes[2].set_title(f"retrieval ({history[-1].get('eval_split') or ''})")
        axes[2].set_xlabel("epoch")
        axes[2].grid(True)
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


class Progress:
    """MatConvNet-style progress lines (``train: epoch 01:   3/270: 45.2 Hz objective: ..``);
    on a terminal one line is rewritten in place."""

    def __init__(self, enabled: bool, mode: str, epoch: int, total: int) -> None:
        self.enabled, self.mode, self.epoch, self.total = enabled, mode, epoch, total
        self.tty = sys.stdout.isatty()
        self.every = 1 if self.tty else max(1, total // 10)
        self.t0 = time.time()

    def update(self, i: int, pairs: float, stats: dict[str, float]) -> None:
        if not self.enabled or (i % self.every and i != self.total):
            return
        hz = pairs / max(time.time() - self.t0, 1e-9)
        text = " ".join(f"{k}: {v:.3f}" for k, v in stats.items())
        line = f"{self.mode}: epoch {self.epoch:02d}: {i:3d}/{self.total:3d}: {hz:.1f} Hz {text}"
        if self.tty:
            end = "\n" if i == self.total else ""
            print("\r" + line, end=end, flush=True)
        else:
            print(line, flush=True)


# --------------------------------------------------------------------------------------------
# Retrieval evaluation
# --------------------------------------------------------------------------------------------


def _cosine_rank1(q: torch.Tensor, g: torch.Tensor, qp, gp, qc, gc) -> dict[str, Any]:
    """Rank-1 by cosine similarity, junk (same id and camera) skipped: the fallback when
    ``porting.validation`` is not available."""
    q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
    g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
    s = q @ g.T
    qp, gp = torch.as_tensor(np.asarray(qp)), torch.as_tensor(np.asarray(gp))
    qc, gc = torch.as_tensor(np.asarray(qc)), torch.as_tensor(np.asarray(gc))
    junk = (qp[:, None] == gp[None]) & (qc[:, None] == gc[None]) | (gp[None] == -1)
    s = s.masked_fill(junk, -math.inf)
    top = s.argmax(dim=1)
    valid = ((qp[:, None] == gp[None]) & ~junk).any(dim=1)
    hits = (gp[top] == qp) & valid
    return {"rank1": float(hits.float().mean()), "mAP": None,
            "method": "porting.train cosine rank-1 (fallback)"}


def evaluate_retrieval(model: nn.Module, split: str, data: TrainData, preprocess: Preprocess,
                       recipe_name: str, device: torch.device, workers: int = 0,
                       progress: bool = False) -> dict[str, Any] | None:
    """Rank-1 / mAP of the current weights.

    ``split="test"``: the dataset's query vs ``bounding_box_test`` with the official Market
    protocol; ``"heldout"``: the held-out images (queries) against the training images
    (gallery), same protocol (good = same identity in another camera). Uses
    ``porting.validation`` (feature extraction as ``validate`` does it and
    ``evaluate_market_features``: trapezoid AP, top-2000) when it is importable, else a
    cosine rank-1 of its own.
    """
    from porting.models import SiameseReID

    if split == "test":
        if data.dataset not in ("market1501", "dukemtmc"):
            return None
        base = Path(data.root)
        try:
            from porting.validation.datasets import DUKE_NAME, MARKET_NAME, list_reid_folder

            pat = DUKE_NAME if data.dataset == "dukemtmc" else MARKET_NAME
            q, _ = list_reid_folder(base / "query", pat)
            g, _ = list_reid_folder(base / "bounding_box_test", pat)
            q_items, q_p, q_c = list(q.paths), q.pids, q.camids
            g_items, g_p, g_c = list(g.paths), g.pids, g.camids
        except ImportError:
            q_items, _, q_p, q_c = _list_market_folder(base / "query")
            g_items, _, g_p, g_c = _list_market_folder(base / "bounding_box_test")
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
    try:
        try:
            from porting.validation.extract import extract_features
            from porting.validation.metrics import evaluate_market_features
        except ImportError:
            extract_features = evaluate_market_features = None
        if extract_features is not None:
            kw = {"batch_size": 64, "num_workers": workers, "device": device,
                  "progress": progress}
            qf = extract_features(net, q_items, preprocess, recipe_name, desc="query", **kw)
            gf = extract_features(net, g_items, preprocess, recipe_name, desc="gallery", **kw)
            q_p, g_p, q_c, g_c = (np.array(a, dtype=np.int64) for a in (q_p, g_p, q_c, g_c))
            res = evaluate_market_features(qf, gf, q_p, g_p, q_c, g_c,
                                           rank_size=min(2000, len(g_items)))
            out = {"rank1": res.r1, "mAP": res.mAP_valid, "method":
                   "porting.validation extract_features + evaluate_market_features "
                   "(zzd_evaluation_res_faster.m protocol)"}
        else:
            feats = []
            with torch.no_grad():
                for items in (q_items, g_items):
                    fs = [net.embed(torch.stack([preprocess(it) for it in items[i:i + 64]])
                                    .to(device), recipe_name).cpu()
                          for i in range(0, len(items), 64)]
                    feats.append(torch.cat(fs))
            out = _cosine_rank1(feats[0], feats[1], q_p, g_p, q_c, g_c)
    finally:
        net.train(was_training)
    out.update({"split": split, "n_query": len(q_items), "n_gallery": len(g_items)})
    return out


# --------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    data_root: str
    out: str
    dataset: str = "market1501"
    arch: str = "resnet50"
    recipe: str = "matconvnet"
    init: str | None = None
    trunk_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    lr: str | None = None
    batch_size: int | None = None
    iter_size: int | None = None
    base_lr: float | None = None
    stepsize: int | None = None
    max_iter: int | None = None
    dropout: float | None = None
    image_size: int | None = None
    crop: int | None = None
    jpeg_quality: int | None = None
    holdout: str = "auto"
    split_seed: int = 0
    cuhk03_split: int = 6
    dividor_rule: str = "paper"
    backbone_lr: tuple[float, float] = (0.001, 0.02)
    fc751_lr: tuple[float, float] = (0.01, 0.2)
    fc9_lr: tuple[float, float] = (0.01, 0.2)
    seed: int = 0
    device: str = "auto"
    resume: str = "auto"
    eval_every: int = 0
    eval_split: str = "auto"
    workers: int = 0
    cache_dir: str | None = None
    keep_last: int = 0
    log_pairs: bool = False
    quiet: bool = False


def _recipe_from(cfg: TrainConfig) -> TrainRecipe:
    r = get_train_recipe(cfg.recipe, cfg.arch)
    upd: dict[str, Any] = {}
    if cfg.lr is not None:
        upd["lr_schedule"] = tuple(parse_schedule(cfg.lr))
    if cfg.epochs is not None and r.framework == "matconvnet":
        sched = list(upd.get("lr_schedule", r.lr_schedule))
        # MatConvNet: learningRate(min(epoch, numel)); fewer epochs cut the schedule
        sched = sched[:cfg.epochs] + [sched[-1]] * max(0, cfg.epochs - len(sched))
        upd["lr_schedule"] = tuple(sched)
    for name in ("batch_size", "iter_size", "base_lr", "stepsize", "max_iter", "dropout",
                 "image_size", "crop", "jpeg_quality"):
        v = getattr(cfg, name)
        if v is not None:
            upd[name] = v
    if cfg.holdout != "auto":
        upd["holdout"] = cfg.holdout == "matconvnet"
    r = replace(r, **upd)
    if r.crop > r.image_size:
        raise ValueError(f"crop {r.crop} is larger than the image size {r.image_size}")
    if r.framework == "caffe" and cfg.epochs is not None:
        raise ValueError("caffe-dxy counts iterations: use --max-iter, not --epochs")
    return r


class Trainer:
    """One training run (also used by ``bench/train.py``)."""

    def __init__(self, cfg: TrainConfig, data: TrainData | None = None,
                 cache: np.ndarray | None = None) -> None:
        self.cfg = cfg
        self.recipe = _recipe_from(cfg)
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
        self._say(f"{self.data.dataset}: {len(self.labels)} training images, "
                  f"{self.data.num_ids} identities, {int((self.data.sets == 2).sum())} held out")
        if cache is None:
            self._say(f"resizing to {r.image_size}x{r.image_size} ({r.resize}"
                      f"{f', JPEG q{r.jpeg_quality}' if r.jpeg_quality else ''})")
            if cfg.cache_dir is not None and not self.main:
                _barrier()  # rank 0 writes the cache first
                cache = build_cache(self.data.items, self.data.names, r.image_size, r.resize,
                                    r.jpeg_quality, cfg.workers, cfg.cache_dir)
            else:
                cache = build_cache(self.data.items, self.data.names, r.image_size, r.resize,
                                    r.jpeg_quality, cfg.workers, cfg.cache_dir,
                                    progress=not cfg.quiet and self.main)
                if cfg.cache_dir is not None:
                    _barrier()
        self.cache = cache
        torch.manual_seed(cfg.seed)
        self.model, self.spec, self.init_info = build_model_for(
            r, self.data.num_ids, init=cfg.init, trunk_kwargs=cfg.trunk_kwargs or None,
            seed=cfg.seed, dropout=cfg.dropout)
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

    # -- helpers ---------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        if self.main and not self.cfg.quiet:
            print(text, flush=True)

    def _seed_epoch(self, epoch: int) -> None:
        # cnn_train_dag: rng(epoch + opts.randomSeed) at the start of every epoch; here the
        # dropout masks (torch) are seeded by (seed, epoch, rank).
        torch.manual_seed(_seed_for(self.cfg.seed, epoch, 1000 + self.rank))

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

    def _log_pairs(self, epoch: int, split: str, step: int, b: PairBatch) -> None:
        if not self.cfg.log_pairs:
            return
        f = self._pairs_files.get(split)
        if f is None:
            f = open(self.out / f"pairs.{split}.rank{self.rank}.jsonl", "a")  # noqa: SIM115
            self._pairs_files[split] = f
        f.write(json.dumps({"epoch": epoch, "step": step, **b.to_json()}) + "\n")
        f.flush()

    # -- one step ----------------------------------------------------------------------------

    def _forward(self, s: Step, weights: tuple[float, float, float], reduction: str):
        from porting.layers import class_error
        from porting.models import SiameseReID

        out = self.net(s.x1, s.x2)
        loss = SiameseReID.loss(out, s.label, s.label_2, s.same, weights, reduction)
        n = s.x1.shape[0]
        with torch.no_grad():
            if reduction == "sum":
                objs = [loss.objective, loss.objective_2, loss.objective_final]
            else:
                objs = [loss.objective * n, loss.objective_2 * n, loss.objective_final * n]
            stats = torch.stack([torch.tensor(float(n), device=objs[0].device), *[o.detach()
                                 for o in objs],
                                 class_error(out.prediction, s.label),
                                 class_error(out.prediction_2, s.label_2),
                                 class_error(out.dist_prediction, s.same)])
        return loss, stats

    def train_step_matconvnet(self, s: Step, lr: float) -> torch.Tensor:
        """One ``cnn_train_dag`` iteration: forward, backward of the summed weighted losses,
        ``accumulateGradients``."""
        r = self.recipe
        assert self.recorder is not None
        self.recorder.reset()
        loss, stats = self._forward(s, r.loss_weights, "sum")
        loss.total.backward()
        flat = self.recorder.flat()
        if flat is not None and self.world > 1:
            flat = _all_sum(flat, self.device)
        if flat is not None:
            self.recorder.set_flat(flat)
        assert isinstance(self.opt, MatConvNetSGD)
        self.opt.step(lr, s.n_global, grad_scale=float(self.world),
                      moments_der=self.recorder.ders())
        self.opt.zero_grad()
        return stats

    def train_step_caffe(self, steps: list[Step], rate: float) -> torch.Tensor:
        """One Caffe iteration: ``iter_size`` forward/backward passes (each a mean over its
        global batch), then ``ApplyUpdate``."""
        r = self.recipe
        total = None
        for k, s in enumerate(steps):
            ctx = (self.net.no_sync() if self.world > 1 and k < len(steps) - 1
                   else contextlib.nullcontext())
            with ctx:
                loss, stats = self._forward(s, r.loss_weights, "mean")
                # this process's share of the global mean (equal to the mean itself alone)
                (loss.total * (s.x1.shape[0] / s.n_global)).backward()
            total = stats if total is None else total + stats
        assert isinstance(self.opt, CaffeSGD)
        self.opt.step(rate, r.iter_size, grad_scale=float(self.world))
        self.opt.zero_grad()
        assert total is not None
        return total

    # -- epochs ------------------------------------------------------------------------------

    def _summary(self, stats: torch.Tensor, prefix: str) -> dict[str, Any]:
        stats = _all_sum(stats.detach().double(), self.device).cpu()
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
        prog = Progress(self.main and not self.cfg.quiet, "train", epoch, len(batches))
        acc = torch.zeros(7, dtype=torch.float64, device=self.device)
        try:
            for i, s in enumerate(stream, start=1):
                self._log_pairs(epoch, "train", i, s.batch)
                acc += self.train_step_matconvnet(s, lr).double()
                self.iteration += 1
                if prog.enabled and (i % prog.every == 0 or i == len(batches)):
                    prog.update(i, float(acc[0]) * self.world, self._progress_stats(acc))
        finally:
            stream.close()
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

    def _eval_forward(self, s: Step):
        # the bare module: no DDP hooks in evaluation
        from porting.layers import class_error
        from porting.models import SiameseReID

        out = self.model(s.x1, s.x2)
        loss = SiameseReID.loss(out, s.label, s.label_2, s.same, self.recipe.loss_weights, "sum")
        n = s.x1.shape[0]
        stats = torch.stack([torch.tensor(float(n), device=out.prediction.device),
                             loss.objective, loss.objective_2, loss.objective_final,
                             class_error(out.prediction, s.label),
                             class_error(out.prediction_2, s.label_2),
                             class_error(out.dist_prediction, s.same)])
        return loss, stats

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
        prog = Progress(self.main and not self.cfg.quiet, "train", epoch, n_iter)
        acc = torch.zeros(7, dtype=torch.float64, device=self.device)
        try:
            it = iter(stream)
            for i in range(1, n_iter + 1):
                steps = [next(it) for _ in range(r.iter_size)]
                for k, s in enumerate(steps):
                    self._log_pairs(epoch, "train", (i - 1) * r.iter_size + k + 1, s.batch)
                rate = caffe_step_lr(r.base_lr, r.gamma, r.stepsize, self.iteration)
                acc += self.train_step_caffe(steps, rate).double()
                self.iteration += 1
                if prog.enabled and (i % prog.every == 0 or i == n_iter):
                    prog.update(i, float(acc[0]) * self.world, self._progress_stats(acc))
        finally:
            stream.close()
        self._finish_train(row, acc, t0)
        return row

    # -- checkpoints -------------------------------------------------------------------------

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
        path = self.out / f"net-epoch-{epoch}.pth"
        if self.main:
            save_checkpoint(path, self.checkpoint(epoch))
            if self.cfg.keep_last > 0:
                for old in self.out.glob("net-epoch-*.pth"):
                    m = re.match(r"net-epoch-(\d+)\.pth$", old.name)
                    if m and int(m.group(1)) <= epoch - self.cfg.keep_last:
                        old.unlink()
        _barrier()
        return path

    def last_checkpoint(self) -> Path | None:
        """cnn_train_dag's ``findLastCheckpoint``: the highest ``net-epoch-N``."""
        best = None
        for p in self.out.glob("net-epoch-*.pth"):
            m = re.match(r"net-epoch-(\d+)\.pth$", p.name)
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

    # -- the run -----------------------------------------------------------------------------

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
            try:
                from porting.validation.cli import main as validate
            except ImportError:
                validate = None
            if validate is not None:
                out = self.out / f"validate-epoch-{epoch}.json"
                argv = ["--dataset", self.data.dataset, "--root", self.data.root,
                        "--checkpoint", str(checkpoint), "--json", str(out),
                        "--device", str(self.device), "--workers", str(self.cfg.workers),
                        "--cuhk03-split", str(self.cfg.cuhk03_split)]
                if self.cfg.quiet or not self.main:
                    argv.append("-q")
                sink = io.StringIO()
                with (contextlib.redirect_stdout(sink) if self.cfg.quiet
                      else contextlib.nullcontext()):
                    rc = validate(argv)
                _barrier()
                if rc != 0:
                    raise RuntimeError(f"validate failed on {checkpoint} (exit {rc})")
                res = json.loads(out.read_text()) if out.is_file() else None
                if res is None:
                    return {"rank1": None, "mAP": None, "method": "validate"}
                if "results" in res:  # CUHK03: the single-shot protocol (the paper's Table 4)
                    res = res["results"]["single-shot"]
                return {"rank1": res["rank1"] / 100.0, "mAP": res["mAP"] / 100.0,
                        "method": f"validate ({out.name})"}
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
            if split and ((cfg.eval_every and epoch % cfg.eval_every == 0) or last):
                res = self.evaluate(split, path, epoch)
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
        for f in self._pairs_files.values():
            f.close()
        self._pairs_files = {}
        return self.history

    def _epoch_line(self, row: dict[str, Any]) -> str:
        parts = [f"epoch {row['epoch']}: lr {row['lr']:g}"]
        for pre in ("train", "val"):
            if row.get(f"{pre}_objective") is not None:
                parts.append(f"{pre} " + " ".join(
                    f"{s} {row[f'{pre}_{s}']:.4f}" for s in STAT_NAMES))
        if row.get("eval_rank1") is not None:
            mAP = row.get("eval_mAP")
            parts.append(f"{row['eval_split']} rank-1 {100 * row['eval_rank1']:.2f}%"
                         + (f" mAP {100 * mAP:.2f}%" if mAP is not None else ""))
        parts.append(f"{row.get('pairs_per_s') or 0:.1f} pairs/s")
        return " | ".join(parts)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _pair_floats(text: str) -> tuple[float, float]:
    parts = [float(x) for x in str(text).split(",")]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError("expected FILTER,BIAS")
    return parts[0], parts[1]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train",
        description="Train the paper's two-stream re-ID network with the authors' MatConvNet "
        "recipe (default) or D-X-Y's Caffe recipe. Run under torchrun for several GPUs/"
        "processes: torchrun --nproc_per_node N -m porting.train ...",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("data_root", help="Market-1501/DukeMTMC-reID folder (with bounding_box_train),"
                   " or cuhk-03.mat for --dataset cuhk03")
    p.add_argument("-o", "--out", required=True, help="output folder (checkpoints, logs)")
    p.add_argument("--dataset", default="market1501", choices=["market1501", "dukemtmc",
                                                               "cuhk03"])
    p.add_argument("--arch", default="resnet50", choices=["resnet50", "caffenet", "vgg16"])
    p.add_argument("--recipe", default="matconvnet",
                   choices=["matconvnet", "market-matconvnet", "caffe-dxy"])
    p.add_argument("--init", default=None, help="a converted checkpoint (ImageNet .mat/"
                   "caffemodel converted by convert-matconvnet/convert-caffe, or a two-stream "
                   "one): its backbone is used, the heads are re-initialised. Default: random")
    p.add_argument("--width", type=int, default=None, help="ResNet-50 width (random backbone)")
    p.add_argument("--trunk-kwargs", default=None,
                   help='JSON kwargs of a random backbone, e.g. \'{"widths": [8,16,16,16,16], '
                        '"fc_width": 32}\'')
    g = p.add_argument_group("recipe overrides (defaults: the recipe's)")
    g.add_argument("--epochs", type=int, default=None)
    g.add_argument("--lr", default=None, help='MatConvNet global rates, e.g. "0.1*70,0.01*5"')
    g.add_argument("--batch-size", type=int, default=None, help="pairs per (global) batch")
    g.add_argument("--iter-size", type=int, default=None, help="caffe-dxy iter_size")
    g.add_argument("--base-lr", type=float, default=None, help="caffe-dxy base_lr")
    g.add_argument("--stepsize", type=int, default=None, help="caffe-dxy stepsize")
    g.add_argument("--max-iter", type=int, default=None, help="caffe-dxy max_iter")
    g.add_argument("--dropout", type=float, default=None, help="head dropout rate")
    g.add_argument("--image-size", type=int, default=None, help="training resize (256)")
    g.add_argument("--crop", type=int, default=None, help="training crop (224/227)")
    g.add_argument("--jpeg-quality", type=int, default=None,
                   help="re-encode the resized images as JPEG (prepare_data.m imwrite: 75); "
                        "0 = no")
    g.add_argument("--holdout", default="auto", choices=["auto", "matconvnet", "none"],
                   help="prepare_data.m's ~10%% held-out set (auto: MatConvNet recipe only)")
    g.add_argument("--split-seed", type=int, default=0)
    g.add_argument("--cuhk03-split", type=int, default=6,
                   help="CUHK03 test split (testsets{6} as prepare_imdb.m)")
    g.add_argument("--dividor-rule", default="paper", choices=["paper", "released"],
                   help="paper: d=min(5,2*1.01^epoch); released: the script's max(5, ...)")
    g.add_argument("--backbone-lr-mult", type=_pair_floats, default=(0.001, 0.02),
                   help="backbone learningRate of odd,even parameter indices "
                        "(resnet52_market.m: 0.001,0.02)")
    g.add_argument("--fc751-lr-mult", type=_pair_floats, default=(0.01, 0.2),
                   help="fc751 filter,bias learningRate (train_id_net_res_2stream.m)")
    g.add_argument("--fc9-lr-mult", type=_pair_floats, default=(0.01, 0.2),
                   help="fc9 filter,bias learningRate (initParams.m: 0.01,0.2; stock "
                        "MatConvNet: 1,1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--resume", default="auto",
                   help="auto (the last net-epoch-N.pth in --out, as cnn_train_dag), none, or "
                        "a checkpoint path")
    p.add_argument("--eval-every", type=int, default=0,
                   help="evaluate retrieval every K epochs (always at the end)")
    p.add_argument("--eval-split", default="auto", choices=["auto", "test", "heldout", "none"])
    p.add_argument("--workers", type=int, default=0,
                   help="threads to resize images, DataLoader workers for evaluation")
    p.add_argument("--cache-dir", default=None, help="keep the resized images here (.npy)")
    p.add_argument("--keep-last", type=int, default=0,
                   help="keep only the last K checkpoints (0: all, as MatConvNet)")
    p.add_argument("--log-pairs", action="store_true",
                   help="write every batch's pairs and augmentation draws (pairs.*.jsonl)")
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    kw = json.loads(args.trunk_kwargs) if args.trunk_kwargs else {}
    if not isinstance(kw, dict):
        raise ValueError("--trunk-kwargs must be a JSON object")
    if args.width is not None:
        kw["width"] = args.width
    return TrainConfig(
        data_root=args.data_root, out=args.out, dataset=args.dataset, arch=args.arch,
        recipe=args.recipe, init=args.init, trunk_kwargs=kw, epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size, iter_size=args.iter_size, base_lr=args.base_lr,
        stepsize=args.stepsize, max_iter=args.max_iter, dropout=args.dropout,
        image_size=args.image_size, crop=args.crop, jpeg_quality=args.jpeg_quality,
        holdout=args.holdout, split_seed=args.split_seed, cuhk03_split=args.cuhk03_split,
        dividor_rule=args.dividor_rule,
        backbone_lr=tuple(args.backbone_lr_mult), fc751_lr=tuple(args.fc751_lr_mult),
        fc9_lr=tuple(args.fc9_lr_mult), seed=args.seed, device=args.device,
        resume=args.resume, eval_every=args.eval_every, eval_split=args.eval_split,
        workers=args.workers, cache_dir=args.cache_dir, keep_last=args.keep_last,
        log_pairs=args.log_pairs, quiet=args.quiet)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        trainer = Trainer(cfg)
        trainer.fit()
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return 2
    finally:
        d = _dist()
        if d is not None:
            d.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
