"""Load time and memory of a ``.safetensors`` checkpoint against its ``.pth`` twin (issue 24).

The full-width two-stream ResNet-50 of the paper (``porting.models``: SiameseReID over the
MatConvNet ResNet-50 at width 64, pool5 2048, 751 identities, as ``hubconf.siamese_resnet50``
builds it) gets seeded random weights and is written once in each format by
``porting.save_checkpoint``. Each step then runs in a fresh process (``bench/_common.py``),
interleaved, ``--repeats`` times; the best time and the largest memory are kept:

* ``read-pth`` / ``read-st``: :func:`porting.checkpoint.read_checkpoint` (the dict, tensors in
  memory: ``torch.load(weights_only=True)`` against the safetensors reader);
* ``load-pth`` / ``load-st``: :func:`porting.load` (schema check + building the module).

Memory is the resident set the step added: at its peak (``VmHWM``) and what stays once it
returned with its result alive (``VmRSS`` after - before), both also as a multiple of the
checkpoint's tensor bytes. Files are read from the page cache (each was just written): the
figures compare the formats' decoding, not the disk. The script measures; it does not judge.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    MIB,
    _status_kib,
    child_report,
    machine,
    measure_here,
    mib,
    run_child,
    set_threads,
)

STEPS = ("read-pth", "read-st", "load-pth", "load-st")
SPEC = {"name": "siamese", "trunk": {"name": "resnet50", "kwargs": {
    "semantics": "matconvnet", "width": 64, "num_classes": None}},
    "kwargs": {"feat_dim": 2048, "num_ids": 751, "dropout": 0.9}}


def write_twins(folder: Path, seed: int) -> dict[str, Any]:
    """The two files of the same random full-width checkpoint; their sizes."""
    import torch

    from porting.checkpoint import make_checkpoint, save_checkpoint
    from porting.models import build_model

    torch.manual_seed(seed)
    model = build_model(SPEC)
    ckpt = make_checkpoint(model.state_dict(), arch=SPEC, recipe="market-matconvnet")
    save_checkpoint(folder / "net.pth", ckpt)
    save_checkpoint(folder / "net.safetensors", ckpt)
    tensor_bytes = sum(t.numel() * t.element_size() for t in ckpt["state_dict"].values())
    return {"tensor_bytes": tensor_bytes, "tensors": len(ckpt["state_dict"]),
            "pth_bytes": (folder / "net.pth").stat().st_size,
            "st_bytes": (folder / "net.safetensors").stat().st_size}


def child(step: str, folder: Path) -> None:
    import porting
    from porting.checkpoint import read_checkpoint

    path = folder / ("net.pth" if step.endswith("pth") else "net.safetensors")
    kept: list[Any] = []
    fn = read_checkpoint if step.startswith("read") else porting.load
    result = measure_here(lambda: kept.append(fn(path)))
    result["rss_added"] = (_status_kib("VmRSS") or 0) * 1024 - result["rss_before"]
    child_report(result)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5,
                   help="fresh-process runs per step, interleaved; the best time is kept")
    p.add_argument("--threads", type=int, help="OMP_NUM_THREADS for every step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--_step", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._step:
        child(args._step[0], Path(args._step[1]))
        return 0
    threads = set_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="bench_ckpt_"))
    try:
        facts = write_twins(folder, args.seed)
        script = os.path.abspath(__file__)
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in STEPS}
        for _ in range(args.repeats):  # round-robin: a busy phase hits every step alike
            for s in STEPS:
                runs[s].append(run_child(script, ["--_step", s, str(folder)]))
        results = {s: {"wall_s": min(r["wall_s"] for r in rs),
                       "walls": [r["wall_s"] for r in rs],
                       "peak_added": max(r["peak_added"] for r in rs),
                       "rss_added": max(r["rss_added"] for r in rs)} for s, rs in runs.items()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    tb = facts["tensor_bytes"]
    print(f"machine: {machine()}; OMP_NUM_THREADS={threads}")
    print(f"checkpoint: {facts['tensors']} tensors, {mib(tb)} MiB of tensors; .pth "
          f"{mib(facts['pth_bytes'])} MiB, .safetensors {mib(facts['st_bytes'])} MiB")
    print(f"{'step':<9} {'best s':>7}  {'runs s':<36} {'peak added MiB':>14} {'/ tensors':>9}"
          f" {'kept MiB':>9} {'/ tensors':>9}")
    for name in STEPS:
        r = results[name]
        walls = " ".join(f"{w:.3f}" for w in r["walls"])
        print(f"{name:<9} {r['wall_s']:7.3f}  {walls:<36} {r['peak_added'] / MIB:14.1f} "
              f"{r['peak_added'] / tb:9.2f} {r['rss_added'] / MIB:9.1f} "
              f"{r['rss_added'] / tb:9.2f}")
    for kind in ("read", "load"):
        st, pth = results[f"{kind}-st"], results[f"{kind}-pth"]
        print(f"{kind}: safetensors / pth time {st['wall_s'] / pth['wall_s']:.2f}x; peak "
              f"memory added {mib(st['peak_added'])} vs {mib(pth['peak_added'])} MiB "
              f"({(st['peak_added'] - pth['peak_added']) / tb:+.2f}x the tensor bytes); kept "
              f"{mib(st['rss_added'])} vs {mib(pth['rss_added'])} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
