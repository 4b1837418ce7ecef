"""Time and peak memory of ``convert-caffe`` against the bare protobuf parse of the caffemodel.

Writes a FULL-WIDTH Kaiming He ResNet-50 (``deploy.prototxt`` + ``weights.caffemodel``, about
100 MB of seeded random float32) by widening the narrow fixture
``tests/fixtures/caffe/resnet50_narrow`` (ResNet-50 at 1/8 width, saved by a real Caffe): the
prototxt is the fixture's text with every ``num_output`` x8 (legacy ``input:``/``input_dim:``
header kept), the caffemodel is the fixture's ``NetParameter`` (same layers, order, Split
layers, ``ParamSpec``s) with every blob re-shaped to full width (``BlobShape``) and refilled
with random ``data``, written THROUGH THE PROJECT'S OWN SCHEMA (``porting.converters.
caffe.proto.NetParameter``). BatchNorm keeps its 3 blobs (mean, variance > 0, the fixture's
scale factor), Scale its gamma/beta. Then, in one run, each step in fresh subprocesses (see
``bench/_common.py``):

* ``parse``     baseline: read the file's bytes + ``NetParameter.FromString(bytes)``;
* ``load_net``  ``porting.converters.caffe.reader.load_net`` (prototxt + caffemodel parse, V1
  upgrade, weights matched by name into one float32 buffer: the reader alone);
* ``convert``   ``porting.converters.caffe.convert`` (load_net + graph);
* ``main``      ``convert-caffe deploy.prototxt weights.caffemodel -o OUT -q`` in-process
  (convert + the ``--arch auto`` mapping and its check, which also serves as the dry run +
  checkpoint write).

It prints best-of-N wall times, peak resident memory added per step, the ratios to the
``parse`` baseline and issue #4's target (time <= 1.5x). ``--profile`` adds a cProfile of
``main``. Exit status 0 whether or not the target is met (it is a measurement).

    python bench/convert_caffe.py
    python bench/convert_caffe.py --repeats 5 --profile
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    MIB,
    child_profile,
    converter_bench_parser,
    interleaved,
    machine,
    mib,
    record_and_drop,
    results_rows,
    run_step_in_child,
    set_threads,
)

FIXTURE = HERE.parent / "tests/fixtures/caffe/resnet50_narrow"
WIDEN = 8  # the fixture is ResNet-50 at 1/8 width


def _full_blob_shape(kind: str, index: int, shape: tuple[int, ...],
                     factor: int) -> tuple[int, ...]:
    """Full-width shape of blob ``index`` of a ``kind`` layer of the narrow fixture."""
    if kind == "BatchNorm" and index == 2:
        return shape  # the moving-average scale factor, (1,)
    if kind == "Convolution" and index == 0:
        o, i, kh, kw = shape
        return (o * factor, i if i == 3 else i * factor, kh, kw)  # conv1 keeps BGR input
    if kind == "InnerProduct" and index == 0:
        o, i = shape
        return (o * factor, i * factor)
    if len(shape) == 1:
        return (shape[0] * factor,)  # biases, BN mean/variance, Scale gamma/beta
    raise ValueError(f"unexpected blob {index} of shape {shape} in a {kind} layer")


def _random_blob(kind: str, index: int, shape: tuple[int, ...], narrow: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    if kind == "BatchNorm":
        if index == 2:
            return narrow  # keep the fixture's scale factor
        if index == 1:
            return 0.5 + rng.random(shape, dtype=np.float32)  # variance > 0
        return 0.1 * rng.standard_normal(shape, dtype=np.float32)
    x = rng.standard_normal(shape, dtype=np.float32)
    if kind == "Scale" and index == 0:
        return 1.0 + 0.1 * x
    if len(shape) > 1:
        return x * np.float32(np.sqrt(2.0 / int(np.prod(shape[1:]))))
    return 0.1 * x


def generate(folder: Path, *, factor: int = WIDEN, seed: int = 0,
             keep_values: bool = False) -> dict:
    """Write ``deploy.prototxt`` and ``weights.caffemodel`` into ``folder``; facts about them."""
    from porting.converters.caffe import proto as cp

    text = (FIXTURE / "deploy.prototxt").read_text()
    text = re.sub(r"(num_output:\s*)(\d+)", lambda m: f"{m[1]}{int(m[2]) * factor}", text)
    (folder / "deploy.prototxt").write_text(text)

    narrow = cp.NetParameter.FromString((FIXTURE / "weights.caffemodel").read_bytes())
    rng = np.random.default_rng(seed)
    net = cp.NetParameter()
    net.CopyFrom(narrow)  # name and every net-level field as the fixture has them
    del net.layer[:]
    n_values = n_blobs = 0
    for src in narrow.layer:
        layer = net.layer.add()
        layer.CopyFrom(src)
        del layer.blobs[:]
        for i, blob in enumerate(src.blobs):
            values = np.asarray(blob.data, dtype=np.float32).reshape(tuple(blob.shape.dim))
            shape = _full_blob_shape(src.type, i, values.shape, factor)
            if not keep_values:
                values = _random_blob(src.type, i, shape, values, rng)
            out = layer.blobs.add()
            out.shape.dim.extend(shape)
            out.data.extend(values.ravel().tolist())
            n_values += values.size
            n_blobs += 1
    data = net.SerializeToString()
    (folder / "weights.caffemodel").write_bytes(data)
    return {"params": n_values, "weight_bytes": 4 * n_values, "file_bytes": len(data),
            "blobs": n_blobs, "layers": len(net.layer)}


def check_layout(tmp: Path) -> str:
    """At width factor 1 with the fixture's own values the generated files must convert to
    exactly the fixture's graph and parameters."""
    import torch

    from porting.converters.caffe import convert

    folder = tmp / "narrow_roundtrip"
    folder.mkdir(exist_ok=True)
    generate(folder, factor=1, keep_values=True)
    b_gen, _ = convert(folder / "deploy.prototxt", folder / "weights.caffemodel")
    b_fix, _ = convert(FIXTURE / "deploy.prototxt", FIXTURE / "weights.caffemodel")
    ok = b_gen.layers == b_fix.layers and b_gen.params.keys() == b_fix.params.keys() and all(
        torch.equal(b_gen.params[k], b_fix.params[k]) for k in b_fix.params)
    shutil.rmtree(folder)
    return ("layout check: generator at width factor 1 with the fixture's values converts to "
            f"the fixture's graph and parameters: {'OK' if ok else 'MISMATCH'}")


# ------------------------------------------------------------------------------ child steps


def _child(step: str, folder: str, out: str | None) -> None:
    proto, weights = f"{folder}/deploy.prototxt", f"{folder}/weights.caffemodel"
    if step == "main":  # lazily imported by the converter: import time is not conversion time
        import porting.converters.caffe.arch  # noqa: F401
        import porting.preprocess  # noqa: F401
    if step == "parse":
        from porting.converters.caffe.proto import NetParameter

        def run():
            with open(weights, "rb") as fh:
                return NetParameter.FromString(fh.read())
    elif step == "load_net":
        from porting.converters.caffe.reader import load_net

        def run():
            return load_net(proto, weights)
    elif step == "convert":
        from porting.converters.caffe import convert

        def run():
            return convert(proto, weights)
    elif step == "main":
        from porting.converters.caffe import main

        def run():
            if main([proto, weights, "-o", out, "-q"]) != 0:
                raise SystemExit("convert-caffe failed")
    else:
        raise SystemExit(f"unknown step {step}")
    run_step_in_child(run)


# ------------------------------------------------------------------------------ parent

STEPS = ("parse", "load_net", "convert", "main")


def main(argv: list[str] | None = None) -> int:
    p = converter_bench_parser(__doc__, "keep the generated files")
    args = p.parse_args(argv)
    if args._step:
        step, folder, *rest = args._step
        _child(step, folder, rest[0] if rest else None)
        return 0

    from tabulate import tabulate

    script = str(Path(__file__).resolve())
    tmp = Path(args.workdir or tempfile.mkdtemp(prefix="bench_caffe_"))
    tmp.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    print(f"machine: {machine()}; intra-op threads: {set_threads(args.threads)}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(check_layout(tmp))
    folder = tmp / "resnet50_full"
    folder.mkdir(exist_ok=True)
    out = tmp / "out.pth"
    sizes: list[int] = []
    try:
        t0 = time.perf_counter()
        facts = generate(folder, seed=args.seed)
        print(f"\n== full-width ResNet-50: {facts['file_bytes'] / MIB:,.1f} MiB caffemodel, "
              f"{facts['layers']} layers, {facts['blobs']} blobs, {facts['params']:,} float32 "
              f"values ({mib(facts['weight_bytes'])} MiB); generated in "
              f"{time.perf_counter() - t0:.1f} s")
        results = interleaved(
            script, [(s, ["--_step", s, str(folder), str(out)]) for s in STEPS], args.repeats,
            after_each=lambda: record_and_drop(out, sizes), fewer={"main": args.main_repeats})
        rows, headers = results_rows(results, "parse", facts["file_bytes"])
        print(tabulate(rows, headers=headers, tablefmt="github"))
        print(f"checkpoint written by main: {max(sizes, default=0) / MIB:,.1f} MiB; memory = "
              f"peak resident set added by the step ({results['parse']['how']}, see "
              "bench/_common.py)")
        base = results["parse"]
        print(tabulate([
            [step, f"{results[step]['wall_s'] / base['wall_s']:.2f}x",
             "yes" if results[step]["wall_s"] / base["wall_s"] <= 1.5 else "NO",
             f"{(results[step]['peak_added'] - base['peak_added']) / facts['file_bytes']:+.2f}x"]
            for step in ("load_net", "convert", "main")
        ], headers=["vs target", "time / parse", "<= 1.5x", "(peak - parse peak) / file"],
            tablefmt="github"))
        print("the target is for the conversion (convert: files -> graph and tensors in "
              "memory); main adds the --arch auto check (two batch-1 forwards) and the "
              "checkpoint write, shown for reference (bench/README.md has its phase trace)")
        if args.profile:
            print("\ncProfile of one run of main:")
            print(child_profile(script, ["--_step", "main", str(folder), str(out)]))
            record_and_drop(out, [])
    finally:
        record_and_drop(out, [])
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
            if not args.workdir:
                shutil.rmtree(tmp, ignore_errors=True)
    if args.keep:
        print(f"\nkept the generated files in {tmp}")
    print(f"\ntotal bench time {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
