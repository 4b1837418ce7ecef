"""Time and peak memory of ``convert-matconvnet`` against ``scipy.io.loadmat`` of the same file.

Generates a FULL-WIDTH two-stream ResNet-50 ``net-epoch-N.mat`` (the paper's network, as
``cnn_train_dag`` saves it: ``net`` + ``state`` + ``stats``; one parameter set used by both
streams; fc751 2048->751, fc9 2048->2) with seeded random float32 weights, by widening the
narrow fixture ``tests/fixtures/matconvnet/resnet52_2stream_narrow/model.mat`` (every struct,
field, layer and setting kept; every parameter replaced by a random array of the full-width
shape; conv ``block.size`` fixed to match). ``state`` keeps its fields and one
``state.r`` / ``state.momentum`` entry per parameter, empty (0x0) by default, so the file is
the ~100 MB of weights the issue describes and ``loadmat`` of the file reads what the
converter reads; ``--state zeros`` (full-size zero buffers) and ``--state random`` (as after
real training; the file triples) are there to measure how the solver state is skipped.
Then, in one run, each step in fresh
subprocesses, interleaved (see ``bench/_common.py``):

* ``loadmat``      baseline: ``scipy.io.loadmat(file)`` (the whole file, scipy defaults);
* ``loadmat-net``  ``scipy.io.loadmat(file, variable_names=["net", "stats"])``: only the
  variables the converter reads (it never reads ``state``);
* ``read``         ``porting.converters.matconvnet.model.read_matconvnet`` (the reader alone);
* ``convert``      ``porting.converters.matconvnet.convert`` (read + graph);
* ``main``         ``convert-matconvnet FILE -o OUT -q`` in-process (convert + the graph check,
  the ``--arch auto`` mapping and its check, which also serves as the dry run, checkpoint
  write).

It prints best-of-N wall times, the peak resident memory each step adds, the ratios to the
``loadmat`` baseline and issue #3's targets: time <= 1.3x, memory added above the loadmat
baseline <= 2x the file size. The v7 (compressed, MATLAB's default) file gets every step; the
v6 (uncompressed) file only the reading steps. ``--profile`` adds a cProfile of ``main``.
Exit status 0 whether or not the targets are met (it is a measurement).

    python bench/convert_matconvnet.py --profile       # what bench/README.md reports
    python bench/convert_matconvnet.py --state random --no-uncompressed
"""

from __future__ import annotations

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

FIXTURE = HERE.parent / "tests/fixtures/matconvnet/resnet52_2stream_narrow/model.mat"
WIDEN = 8  # the fixture is ResNet-50 at 1/8 width
KEEP = (2, 3, 751)  # channel counts that are not widths: fc9 outputs, RGB input, identities


def _wide(c: int, factor: int) -> int:
    return c if c in KEEP else c * factor


def _full_shape(shape: tuple[int, ...], factor: int) -> tuple[int, ...]:
    """Full-width MATLAB shape of a parameter of the narrow fixture.

    HxWxCinxCout filters widen Cin and Cout; Cx1 mult/bias and Cx2 moments widen C.
    """
    if len(shape) == 4:
        h, w, cin, cout = shape
        return (h, w, _wide(cin, factor), _wide(cout, factor))
    if len(shape) == 2:
        return (_wide(shape[0], factor), shape[1])
    raise ValueError(f"unexpected parameter shape {shape}")


def _random_param(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Plausible float32 values: small filters, BN mult near 1, moments [mean, sigma > 0]."""
    if name.endswith("_moments"):
        out = np.empty(shape, np.float32)
        out[:, 0] = rng.standard_normal(shape[0], dtype=np.float32) * 0.1
        out[:, 1] = 0.5 + rng.random(shape[0], dtype=np.float32)
        return out
    x = rng.standard_normal(shape, dtype=np.float32)
    if name.endswith("_mult"):
        return 1.0 + 0.1 * x
    if len(shape) == 4:
        fan_in = shape[0] * shape[1] * shape[2]
        x *= np.float32(np.sqrt(2.0 / fan_in))
        return x
    return 0.1 * x  # biases


def generate(path: Path, *, compress: bool, factor: int = WIDEN, seed: int = 0,
             state: str = "empty", keep_values: bool = False) -> dict:
    """Write the widened two-stream net-epoch file; return facts about it.

    ``state``: what ``state.r``/``state.momentum`` (one array per parameter) hold: ``empty``
    (0x0 arrays, the default), ``zeros`` (full shapes; compresses to almost nothing, but
    scipy inflates a large block of it even to read the variable's header: ``whosmat`` of
    such a file takes ~0.8 s and ~250 MiB here), ``random`` (as after real training: the
    file triples).
    """
    import scipy.io

    mat = scipy.io.loadmat(FIXTURE, squeeze_me=False, mat_dtype=True)
    rng = np.random.default_rng(seed)
    net = mat["net"][0, 0]
    params = net["params"]
    shapes: dict[str, tuple[int, ...]] = {}
    n_values = 0
    for k in range(params.shape[1]):
        name = str(params["name"][0, k].ravel()[0])
        shape = _full_shape(params["value"][0, k].shape, factor)
        shapes[name] = shape
        if not keep_values:  # (the layout check keeps the fixture's values at factor 1)
            params["value"][0, k] = _random_param(name, shape, rng)
        n_values += int(np.prod(shape))
    layers = net["layers"]
    for k in range(layers.shape[1]):
        block = layers["block"][0, k]
        if block.dtype == object and block.size == 1 and block.ravel()[0] is None:
            # scipy reads a 1x1 struct with no fields (dagnn.Sum's block) as [[None]] but
            # cannot write that back; a dict with no keys is written as exactly that struct.
            layers["block"][0, k] = {}
        if str(layers["type"][0, k].ravel()[0]) != "dagnn.Conv":
            continue
        pname = str(layers["params"][0, k].ravel()[0].ravel()[0])
        block["size"][0, 0] = np.asarray([shapes[pname]], dtype=np.float64)
    solver = mat["state"][0, 0]
    for field in ("r", "momentum"):
        cells = solver[field]
        for k in range(cells.shape[1]):
            shape = _full_shape(cells[0, k].shape, factor)
            if state == "random":
                cells[0, k] = rng.standard_normal(shape, dtype=np.float32) * 1e-3
            else:
                cells[0, k] = np.zeros(shape if state == "zeros" else (0, 0), np.float32)
    scipy.io.savemat(path, {"net": mat["net"], "state": mat["state"], "stats": mat["stats"]},
                     format="5", do_compression=compress, long_field_names=True)
    return {"params": n_values, "weight_bytes": 4 * n_values,
            "file_bytes": path.stat().st_size, "tensors": len(shapes)}


def check_layout(tmp: Path) -> str:
    """At width factor 1 with the fixture's own values the generated file must hold the same
    variables and convert to exactly the fixture's graph and parameters (the widening itself
    only changes shapes). Returns a one-line verdict."""
    import scipy.io
    import torch

    from porting.converters.matconvnet import convert

    path = tmp / "narrow_roundtrip.mat"
    generate(path, compress=True, factor=1, keep_values=True)
    b_gen, _ = convert(path)
    b_fix, _ = convert(FIXTURE)
    names = [m[0] for m in scipy.io.whosmat(path)]
    path.unlink()
    ok = (names == ["net", "state", "stats"] and b_gen.layers == b_fix.layers
          and b_gen.params.keys() == b_fix.params.keys()
          and all(torch.equal(b_gen.params[k], b_fix.params[k]) for k in b_fix.params))
    return ("layout check: generator at width factor 1 with the fixture's values converts to "
            f"the fixture's graph and parameters: {'OK' if ok else 'MISMATCH'}")


# ------------------------------------------------------------------------------ child steps


def _child(step: str, path: str, out: str | None) -> None:
    # What the converter imports lazily is imported here, before the measurement: import time
    # is not conversion time (the baseline's scipy.io is imported before its step too).
    import scipy.io  # noqa: F401
    import scipy.sparse  # noqa: F401

    if step == "main":
        import porting.converters.matconvnet.arch  # noqa: F401
        import porting.preprocess  # noqa: F401
    if step in ("loadmat", "loadmat-net"):
        import scipy.io

        names = ["net", "stats"] if step == "loadmat-net" else None

        def run():
            return scipy.io.loadmat(path, variable_names=names)
    elif step == "read":
        from porting.converters.matconvnet.model import read_matconvnet

        def run():
            return read_matconvnet(path)
    elif step == "convert":
        from porting.converters.matconvnet import convert

        def run():
            return convert(path)
    elif step == "main":
        from porting.converters.matconvnet import main

        def run():
            if main([path, "-o", out, "-q"]) != 0:
                raise SystemExit("convert-matconvnet failed")
    else:
        raise SystemExit(f"unknown step {step}")
    run_step_in_child(run)


# ------------------------------------------------------------------------------ parent

NOTE = ("the targets are for the conversion (convert: file -> graph and tensors in memory); "
        "main adds the --arch auto check (two batch-1 forwards) and the checkpoint write, "
        "shown for reference (bench/README.md has its phase trace)")
STEPS_FULL = ("loadmat", "loadmat-net", "read", "convert", "main")
# The uncompressed variant differs only in reading: its main would add the same checks and
# writing (see README's phase trace), so it is left out to keep the bench short.
STEPS_SHORT = ("loadmat", "loadmat-net", "read", "convert")


def main(argv: list[str] | None = None) -> int:
    p = converter_bench_parser(__doc__, "keep the generated .mat files")
    p.add_argument("--state", choices=["empty", "zeros", "random"], default="empty",
                   help="state.r/state.momentum: 0x0 (default), zero- or random-filled "
                   "full-size buffers (see generate())")
    p.add_argument("--no-uncompressed", action="store_true",
                   help="only the compressed file (MATLAB's -v7 default)")
    args = p.parse_args(argv)
    if args._step:
        step, path, *rest = args._step
        _child(step, path, rest[0] if rest else None)
        return 0

    from tabulate import tabulate

    script = str(Path(__file__).resolve())
    tmp = Path(args.workdir or tempfile.mkdtemp(prefix="bench_mcn_"))
    tmp.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    print(f"machine: {machine()}; intra-op threads: {set_threads(args.threads)}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(check_layout(tmp))
    variants = [("v7 (compressed, MATLAB's default)", True, STEPS_FULL)]
    if not args.no_uncompressed:
        variants.append(("v6 (uncompressed)", False, STEPS_SHORT))
    out = tmp / "out.pth"

    try:
        for label, compress, steps in variants:
            path = tmp / f"net-epoch-full-{'v7' if compress else 'v6'}.mat"
            t0 = time.perf_counter()
            facts = generate(path, compress=compress, seed=args.seed, state=args.state)
            print(f"\n== {label}: {facts['file_bytes'] / MIB:,.1f} MiB file, "
                  f"{facts['tensors']} parameter tensors, {facts['params']:,} float32 values "
                  f"({mib(facts['weight_bytes'])} MiB), state {args.state}; generated in "
                  f"{time.perf_counter() - t0:.1f} s")
            sizes: list[int] = []
            results = interleaved(
                script, [(s, ["--_step", s, str(path), str(out)]) for s in steps],
                args.repeats, after_each=lambda sizes=sizes: record_and_drop(out, sizes),
                fewer={"main": args.main_repeats})
            rows, headers = results_rows(results, "loadmat", facts["file_bytes"])
            print(tabulate(rows, headers=headers, tablefmt="github"))
            if sizes:
                print(f"checkpoint written by main: {max(sizes) / MIB:,.1f} MiB")
            print(f"memory = peak resident set added by the step ({results['loadmat']['how']},"
                  " see bench/_common.py)")
            _print_targets(results, facts["file_bytes"], tabulate)
            if args.profile and compress:
                print("\ncProfile of one run of main:")
                print(child_profile(script, ["--_step", "main", str(path), str(out)]))
                record_and_drop(out, [])
            if not args.keep:
                path.unlink()
    finally:
        record_and_drop(out, [])
        if not args.keep and not args.workdir:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.keep:
        print(f"\nkept the generated files in {tmp}")
    print(f"\ntotal bench time {time.perf_counter() - t_start:.0f} s")
    return 0


def _print_targets(results: dict, file_bytes: int, tabulate) -> None:
    """Issue #3's targets: time <= 1.3x loadmat, memory above loadmat's <= 2x the file."""
    base = results["loadmat"]
    rows = []
    for step in ("read", "convert", "main"):
        if step not in results:
            continue
        r = results[step]
        t = r["wall_s"] / base["wall_s"]
        m = (r["peak_added"] - base["peak_added"]) / file_bytes
        t_net = r["wall_s"] / results["loadmat-net"]["wall_s"]
        rows.append([step, f"{t:.2f}x", _ok(t <= 1.3), f"{t_net:.2f}x", f"{m:+.2f}x",
                     _ok(m <= 2.0)])
    print(tabulate(rows, tablefmt="github", headers=[
        "vs targets", "time / loadmat", "<= 1.3x", "time / loadmat-net",
        "(peak - loadmat peak) / file", "<= 2x"]))
    if "main" in results:
        print(NOTE)


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


if __name__ == "__main__":
    sys.exit(main())
