"""Throughput of a full ``train`` step against the bare model step on the same batch.

A *full step* is what :class:`porting.train.Trainer` does per iteration of the MatConvNet
recipe: draw the epoch's pairs (:class:`porting.train.pairs.PairSampler`), crop/flip/mean-subtract
the two images of every pair from the uint8 image cache in the background thread of
:class:`porting.train.BatchStream` (pinned memory and a device-side conversion on CUDA),
forward both streams, the three summed losses, backward, the BatchNorm moments der
(:class:`porting.train.optim.MomentsRecorder`) and
:class:`porting.train.optim.MatConvNetSGD`'s update.
The *model-only step* is forward + losses + backward of the same network on one batch
already on the device: no data, no pairs, no update. Both count pairs per second
(one pair = two images); the ratio full / model-only is the target (>= 0.85).

Rounds interleave the two measurements (``--rounds``, each ``--steps`` steps after
``--warmup`` untimed ones) and the best round of each is kept, so that a busy shared machine
hits both alike; all rounds are printed. Data-only throughput (the background thread alone)
is printed too: it shows how much headroom the input pipeline has.

    python bench/train.py                                # CPU: ResNet-50 width 8, 4 pairs
    python bench/train.py --device cuda                  # full ResNet-50, batch 48 pairs
    python bench/train.py --arch caffenet --batch 32     # any recipe arch, any size

The images are random uint8 256x256 arrays (the cache ``train`` builds once); the model is
randomly initialised (the speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from porting.models import SiameseReID  # noqa: E402
from porting.train import BatchStream, TrainConfig, TrainData, Trainer  # noqa: E402
from porting.train.pairs import PairSampler  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_data(n_images: int, n_ids: int, size: int, seed: int = 0
                   ) -> tuple[TrainData, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.integers(0, n_ids, size=n_images))
    labels = np.searchsorted(np.unique(labels), labels)  # 0..K-1 without gaps
    names = [f"{lab + 1:04d}_c{1 + i % 6}s1_{i:06d}_00.jpg" for i, lab in enumerate(labels)]
    data = TrainData(items=[None] * n_images, names=names, pids=labels + 1,
                     camids=np.array([1 + i % 6 for i in range(n_images)]), labels=labels,
                     sets=np.ones(n_images, np.int64), dataset="market1501", root="")
    cache = rng.integers(0, 256, size=(n_images, size, size, 3), dtype=np.uint8)
    return data, cache


def full_steps(tr: Trainer, epoch: int, steps: int, warmup: int) -> float:
    """Seconds per full step (pairs drawn + data + forward/backward + update)."""
    assert isinstance(tr.sampler, PairSampler)
    lr = 0.01
    _sync(tr.device)
    batches = tr.sampler.epoch(epoch)[: warmup + steps]
    stream = BatchStream(tr.cache, tr.labels, batches, tr.recipe, tr.device)
    try:
        it = iter(stream)
        for _ in range(warmup):
            tr.train_step_matconvnet(next(it), lr)
        _sync(tr.device)
        t0 = time.perf_counter()
        # the pairs of the timed steps are part of the cost: draw them again, timed
        tr.sampler.epoch(epoch + 1000)
        for _ in range(steps):
            tr.train_step_matconvnet(next(it), lr)
        _sync(tr.device)
        return (time.perf_counter() - t0) / steps
    finally:
        stream.close()


def model_steps(tr: Trainer, x1, x2, l1, l2, same, steps: int, warmup: int) -> float:
    """Seconds per forward + losses + backward on a batch already on the device."""
    model = tr.model
    model.train()
    w = tr.recipe.loss_weights
    for i in range(warmup + steps):
        if i == warmup:
            _sync(tr.device)
            t0 = time.perf_counter()
        out = model(x1, x2)
        SiameseReID.loss(out, l1, l2, same, w, "sum").total.backward()
        for p in model.parameters():
            p.grad = None
    _sync(tr.device)
    return (time.perf_counter() - t0) / steps


def data_only(tr: Trainer, epoch: int, n: int) -> float:
    """Seconds per batch of the input pipeline alone (background thread, to the device)."""
    batches = tr.sampler.epoch(epoch)[:n]
    stream = BatchStream(tr.cache, tr.labels, batches, tr.recipe, tr.device)
    t0 = time.perf_counter()
    try:
        for _ in stream:
            pass
        _sync(tr.device)
    finally:
        stream.close()
    return (time.perf_counter() - t0) / len(batches)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--arch", default="resnet50", choices=["resnet50", "caffenet", "vgg16"])
    p.add_argument("--width", type=int, default=None,
                   help="ResNet-50 width (default 8 on CPU, 64 on CUDA)")
    p.add_argument("--batch", type=int, default=None,
                   help="pairs per batch (default 4 on CPU, the recipe's on CUDA)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    dev = "cpu" if dev == "auto" else dev
    cuda = dev.startswith("cuda")
    if args.arch == "resnet50":
        kw = {"width": args.width or (64 if cuda else 8)}
    elif cuda:
        kw = {}
    else:
        kw = {"widths": [24, 64, 96, 96, 64], "fc_width": 512}
    steps = args.steps or (20 if cuda else 3)
    recipe_batch = 48 if args.arch != "caffenet" else 128
    batch = args.batch or (recipe_batch if cuda else 4)
    n_images = batch * (args.warmup + steps) + batch
    data, cache = synthetic_data(max(n_images, 4 * batch), max(4, n_images // 16), 256)
    cfg = TrainConfig(data_root="", out="/tmp/bench-train-unused", arch=args.arch,
                      trunk_kwargs=kw, batch_size=batch, device=dev, quiet=True,
                      holdout="none")
    tr = Trainer(cfg, data=data, cache=cache)
    device = tr.device
    # the model-only batch: one real batch of the pipeline, already on the device
    b = tr.sampler.epoch(1)[0]
    stream = BatchStream(tr.cache, tr.labels, [b], tr.recipe, device)
    s = next(iter(stream))
    stream.close()
    x1, x2, l1, l2, same = s.x1, s.x2, s.label, s.label_2, s.same
    full, bare = [], []
    for r in range(args.rounds):
        bare.append(model_steps(tr, x1, x2, l1, l2, same, steps, args.warmup))
        full.append(full_steps(tr, 2 + r, steps, args.warmup))
    data_s = data_only(tr, 50, min(len(tr.sampler.epoch(50)), steps + args.warmup))
    best_full, best_bare = min(full), min(bare)
    res = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "arch": args.arch, "trunk_kwargs": kw, "batch_pairs": batch, "crop": tr.recipe.crop,
        "threads": torch.get_num_threads(), "steps": steps, "rounds": args.rounds,
        "full_step_s": full, "model_step_s": bare,
        "full_pairs_per_s": batch / best_full, "model_pairs_per_s": batch / best_bare,
        "ratio_best": best_bare / best_full,
        "ratio_median": statistics.median(bare) / statistics.median(full),
        "data_only_pairs_per_s": batch / data_s,
        "torch": torch.__version__,
    }
    print(f"device {res['device']}{' (' + res['gpu'] + ')' if cuda else ''}, {args.arch} "
          f"{kw}, {batch} pairs ({2 * batch} images of {tr.recipe.crop}x{tr.recipe.crop}), "
          f"{res['threads']} threads")
    print("round  model-only s/step  full s/step")
    for i, (a, f) in enumerate(zip(bare, full, strict=True)):
        print(f"{i + 1:5d}  {a:17.4f}  {f:11.4f}")
    print(f"model-only: {res['model_pairs_per_s']:.2f} pairs/s   full step: "
          f"{res['full_pairs_per_s']:.2f} pairs/s   data only: "
          f"{res['data_only_pairs_per_s']:.1f} pairs/s")
    print(f"ratio full / model-only: {res['ratio_best']:.3f} (best rounds), "
          f"{res['ratio_median']:.3f} (medians); target >= 0.85")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
