"""Inference speed: the ported models against torchvision, and against themselves.

Images per second, best of interleaved rounds (every step once per round, so that busy and
quiet phases of a shared machine hit all steps alike), all steps in ONE process with the
same threads, random weights (seeded), ``torch.inference_mode``. Printed as ratios to a
baseline measured in the same run:

1. the canonical paper net ``SiameseReID(ResNet50("matconvnet"))`` (its ``features``, as
   extraction runs it) exact and fast, against torchvision's ``resnet50`` at the same input
   (batch 32, 256x256). Target: fast >= 0.95x torchvision.
2. a converted Caffe ResNet-50 graph (``bench/convert_caffe.py``'s full-width widening of the
   narrow fixture, converted with ``convert()``) exact and fast, with its default im2col
   convolutions and with native ones, against the canonical ``ResNet50("caffe")`` (fast) at
   the graph's 224x224. Target: the default (fast, im2col) >= 0.9x.
3. ``FeatureExtractor`` and validate's ``extract_features`` (Market recipe: flip + per-position
   L2, the two-stream checkpoint's own preprocessing on 128x64 uint8 images) against the
   model alone on the same, already preprocessed batches (two forwards per batch: the image
   and its flip). Target >= 0.95.

CUDA (fp32 and AMP fp16) is measured too when a GPU is there (``--device cuda``/``auto``).
``--profile`` adds the top ops (torch.profiler self time) of each model step. ``--quick``:
batch 8, one round (minutes on 2 cores, numbers only indicative). Exit status 0 whether or
not a target is met (it is a measurement).

    python bench/extract.py                  # CPU, 2 threads, batch 32, 2 rounds
    python bench/extract.py --quick --profile
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

Step = Callable[[], object]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(steps: dict[str, Step], rounds: int, device: torch.device) -> dict[str, list]:
    """Wall seconds of each step per round (one warm-up call each first)."""
    times: dict[str, list[float]] = {k: [] for k in steps}
    with torch.inference_mode():
        for fn in steps.values():
            fn()
        for _ in range(rounds):
            for name, fn in steps.items():
                _sync(device)
                t = time.perf_counter()
                fn()
                _sync(device)
                times[name].append(time.perf_counter() - t)
    return times


def report(title: str, times: dict[str, list[float]], images: dict[str, int], base: str,
           targets: dict[str, float]) -> None:
    print(f"\n## {title}\n")
    print("| step | best s | images/s | / baseline | target | runs s |")
    print("|---|---|---|---|---|---|")
    rate = {k: images[k] / min(v) for k, v in times.items()}
    for k, v in times.items():
        ratio = rate[k] / rate[base]
        tgt = f">= {targets[k]:.2f}x {'met' if ratio >= targets[k] else 'MISSED'}" \
            if k in targets else ("baseline" if k == base else "")
        print(f"| {k} | {min(v):.3f} | {rate[k]:.2f} | {ratio:.2f}x | {tgt} | "
              f"{' '.join(f'{t:.2f}' for t in v)} |")


def profile(name: str, fn: Step, top: int = 6) -> None:
    """Top ops by self time of one call."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch.inference_mode():
        fn()
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1
    ops = sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    print(f"  {name}: " + ", ".join(f"{e.key.removeprefix('aten::')} "
                                    f"{100 * e.self_cpu_time_total / total:.0f}%" for e in ops))


def _seeded(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights, BatchNorm statistics with sigma > 0 (a trained net's kind of values)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("moments"):
                t[:, 0].copy_(torch.randn(t.shape[0], generator=g) * 0.1)
                t[:, 1].copy_(torch.rand(t.shape[0], generator=g) + 0.5)
            elif name.endswith(("variance", "sigma")):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    return model.eval()


def two_stream(feat_dim: int = 2048) -> torch.nn.Module:
    from porting.models import ResNet50, SiameseReID

    torch.manual_seed(0)
    return _seeded(SiameseReID(ResNet50("matconvnet", num_classes=None), feat_dim=feat_dim))


def caffe_graph(workdir: Path):
    """The full-width Caffe ResNet-50 graph as ``convert()`` builds it."""
    from convert_caffe import generate

    from porting.converters.caffe import convert

    generate(workdir)
    builder, _ = convert(workdir / "deploy.prototxt", workdir / "weights.caffemodel")
    return builder.module()


def bench_canonical(device, batch: int, rounds: int, amp: bool, prof: bool) -> None:
    import torchvision

    from porting.inference import set_exact

    tv = torchvision.models.resnet50().eval().to(device)
    ours = two_stream().to(device)
    x = torch.randn(batch, 3, 256, 256, device=device)
    ctx = (lambda: torch.autocast(device.type, torch.float16)) if amp else None

    def run(fn: Callable[[torch.Tensor], object], exact: bool | None = None) -> Step:
        def step() -> object:
            if exact is not None:
                set_exact(ours, exact)
            if ctx is None:
                return fn(x)
            with ctx():
                return fn(x)
        return step

    steps = {"torchvision resnet50": run(tv), "ours exact": run(ours.features, True),
             "ours fast": run(ours.features, False)}
    if device.type == "cpu":
        tv_cl = torchvision.models.resnet50().eval().to(memory_format=torch.channels_last)
        ours_cl = two_stream().to(memory_format=torch.channels_last)
        set_exact(ours_cl, False)
        x_cl = x.to(memory_format=torch.channels_last)
        steps["torchvision channels_last"] = lambda: tv_cl(x_cl)
        steps["ours fast channels_last"] = lambda: ours_cl.features(x_cl)
    times = interleaved(steps, rounds, device)
    report(f"Canonical two-stream ResNet-50 vs torchvision ({device.type}"
           f"{', AMP fp16' if amp else ''}, batch {batch}, 256x256)", times,
           dict.fromkeys(times, batch), "torchvision resnet50", {"ours fast": 0.95})
    if prof and device.type == "cpu":
        print("\nprofile (self time):")
        profile("torchvision", steps["torchvision resnet50"])
        profile("ours exact", steps["ours exact"])
        profile("ours fast", steps["ours fast"])


def bench_graph(device, batch: int, rounds: int, prof: bool, workdir: Path) -> None:
    from porting.inference import set_exact
    from porting.models import ResNet50

    graph = caffe_graph(workdir).to(device)
    torch.manual_seed(0)
    canon = set_exact(_seeded(ResNet50("caffe", num_classes=1000)).to(device), False)
    x = torch.randn(batch, 3, 224, 224, device=device)

    def on(exact: bool, conv: str) -> Step:
        def step() -> object:
            set_exact(graph, exact)
            graph.conv = conv
            return graph(data=x)
        return step

    steps = {"canonical ResNet50('caffe') fast": lambda: canon(x),
             "graph exact (im2col)": on(True, "im2col"),
             "graph fast (im2col, default)": on(False, "im2col"),
             "graph fast native conv": on(False, "native")}
    times = interleaved(steps, rounds, device)
    report(f"Converted Caffe ResNet-50 graph vs the canonical class ({device.type}, batch "
           f"{batch}, 224x224)", times, dict.fromkeys(times, batch),
           "canonical ResNet50('caffe') fast", {"graph fast (im2col, default)": 0.9})
    if prof and device.type == "cpu":
        print("\nprofile (self time):")
        for name in ("graph exact (im2col)", "graph fast (im2col, default)",
                     "graph fast native conv"):
            profile(name, steps[name])
    graph.conv = "im2col"


def bench_extraction(device, batch: int, rounds: int, workdir: Path) -> None:
    from porting import FeatureExtractor
    from porting.converters.matconvnet import main as convert_main
    from porting.preprocess import Preprocess
    from porting.recipes import get_recipe, l2_normalize, pool_positions
    from porting.validation.extract import extract_features

    narrow = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "matconvnet" / \
        "resnet52_2stream_narrow" / "model.mat"
    ckpt = workdir / "two_stream_narrow.pth"
    assert convert_main([str(narrow), "-o", str(ckpt), "-q"]) == 0
    import porting

    spec = porting.load(ckpt).preprocess_spec  # the two-stream checkpoint's own preprocessing
    model = two_stream().to(device)
    model.preprocess_spec, model.recipe = spec, "market-matconvnet"
    porting.inference.fast_inference(model)
    pre, recipe = Preprocess.from_dict(spec), get_recipe("market-matconvnet")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (128, 64, 3), dtype=np.uint8) for _ in range(2 * batch)]
    fe = FeatureExtractor(model, device=device, batch_size=batch)
    xs = [torch.stack([pre(im) for im in images[i:i + batch]]).to(device)
          for i in range(0, len(images), batch)]

    def model_alone() -> object:
        out = []
        for x in xs:
            f = pool_positions(model.features(x), recipe)
            f = f + pool_positions(model.features(torch.flip(x, dims=[3])), recipe)
            out.append(l2_normalize(f).cpu())
        return out

    steps = {"model alone (image + flip)": model_alone,
             "FeatureExtractor": lambda: fe(images),
             "extract_features": lambda: extract_features(
                 model, images, pre, recipe, batch_size=batch, num_workers=0, device=device,
                 progress=False)}
    times = interleaved(steps, rounds, device)
    report(f"Extraction vs the model alone ({device.type}, {len(images)} images of 128x64, "
           f"batch {batch}, Market recipe)", times, dict.fromkeys(times, len(images)),
           "model alone (image + flip)", {"FeatureExtractor": 0.95, "extract_features": 0.95})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="batch 8, one round")
    p.add_argument("--batch", type=int, help="images per forward (default 32; --quick 8)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 2; --quick 1)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (cpu, plus cuda if any)")
    p.add_argument("--only", choices=["canonical", "graph", "extraction"], action="append",
                   help="run only these parts (repeatable)")
    p.add_argument("--profile", action="store_true", help="top ops of each model step (CPU)")
    args = p.parse_args(argv)
    batch = args.batch or (8 if args.quick else 32)
    rounds = args.rounds or (1 if args.quick else 2)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # same for every step: random deep nets underflow
    devices = [torch.device("cpu")] if args.device in ("cpu", "auto") else []
    if args.device in ("cuda", "auto") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    elif args.device.startswith("cuda"):
        print("no CUDA device: CPU only")
        devices = devices or [torch.device("cpu")]
    parts = args.only or ["canonical", "graph", "extraction"]
    print(f"torch {torch.__version__}, {args.threads} threads, batch {batch}, "
          f"{rounds} round(s), devices {[d.type for d in devices]}")
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        for device in devices:
            if "canonical" in parts:
                bench_canonical(device, batch, rounds, False, args.profile)
                if device.type == "cuda":
                    bench_canonical(device, batch, rounds, True, False)
            if "graph" in parts:
                bench_graph(device, batch, rounds, args.profile, Path(tmp))
            if "extraction" in parts:
                bench_extraction(device, batch, rounds, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
