"""Fuzz campaign: mutated inputs through the real command-line entry points, in-process.

Every case writes one mutated input (or pair) into a fresh folder, runs the command's
``main(argv)`` in this process with stdout/stderr captured and a per-case timeout (SIGALRM),
then classifies the outcome:

========================  ===================================================================
``ok``                    exit 0 (for converters the checkpoint written must then load)
``clean``                 exit 2 and exactly one stderr line ``error: ...`` naming the input
``FAIL:traceback``        an exception escaped ``main`` (type and location recorded)
``FAIL:unclean``          exit 2 but not one line naming the file (a warning first, no name)
``FAIL:exit``             any other exit status (1 without --check, ...)
``FAIL:hang``             the case ran past ``--timeout`` seconds
``FAIL:leftover``         files left next to the output (temporary files, partial output)
``FAIL:unloadable``       a converter said 0 but ``porting.load`` refuses what it wrote
``FAIL:nonfinite``        ``validate`` scored a feature file holding NaN/Inf (exit 0)
``FAIL:payload``          a pickle payload ran (it would create a marker file)
``FAIL:crash``            the process died (a segfault in a C extension): cases run in a
                          forked child, which is restarted after the crashing case
========================  ===================================================================

Formats and what runs them:

* ``mat7`` / ``mat73``: ``convert-matconvnet`` (``porting.converters.matconvnet.main``) on the
  narrow CaffeNet ``model.mat`` (its 227x227 mean image reduced to the mean colour so that a
  case takes milliseconds), saved by scipy (v7) or as MATLAB's HDF5 layout (v7.3). Byte flips,
  truncations and insertions; struct edits (a field set to NaN/Inf/0/-1/huge/extra dims/a
  string/a cell, a field deleted, a layer deleted/duplicated/swapped/retyped) saved again by
  ``scipy.io.savemat``; HDF5 edits by h5py (values, shapes, dtypes, ``MATLAB_class``
  attributes, deleted datasets).
* ``caffemodel`` / ``prototxt``: ``convert-caffe`` (``porting.converters.caffe.main``) on the
  narrow CaffeNet. caffemodel: bytes, and protobuf field edits through
  ``porting.converters.caffe.proto`` (blob shapes and data, swapped or deleted blobs, layer
  types, names, bottoms, NaN weights). prototxt: text edits (numbers, deep nesting, types,
  bottoms and tops, deleted/duplicated lines, truncation).
* ``features``: ``validate --features`` (``porting.validation.cli.main``) on the bundled mini
  Market-1501, query/gallery files as ``.npy``, ``.mat`` v7 or v7.3: bytes, and array edits
  (NaN/Inf, complex, structured, object arrays holding a pickle payload, 0-d/1-d/3-d, widths,
  rows, variable names).
* ``checkpoint``: ``porting.load`` plus one probe forward at the checkpoint's input size (as a
  command would: a ``CheckpointError``/``GraphError`` is printed as one line, exit 2) on a
  converted graph checkpoint and a small canonical one: bytes (zip damage), and dict edits
  (state_dict dtypes, ranks, NaN, graph keys and layer attributes, preprocessing sizes, arch
  kwargs) plus pickle payloads that would create a marker file if unpickled.

Usage::

    .venv/bin/python bench/fuzz --cases 10000 --json fuzz.json      # every format
    .venv/bin/python bench/fuzz --formats prototxt --cases 500 --seed 3

Layout: this module is the driver (running a case, the campaign, the command line);
:mod:`.cases` builds the seeds and one case per format from the mutators of :mod:`.mat`,
:mod:`.caffe`, :mod:`.features` and :mod:`.checkpoint`; :mod:`.common` holds what they share.

Failures of converter formats are appended (one line each: format, mutation, exception type
and location) to ``--findings`` (default ``/tmp/fuzz_findings.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .cases import Seeds, make_case
from .common import (
    CONVERTER_FORMATS,
    FORMATS,
    MARKER,
    ROOT,
    Case,
    Hang,
    Outcome,
    mutate_bytes,
)

__all__ = ["Case", "Outcome", "Seeds", "campaign", "main", "make_case", "mutate_bytes", "run_case"]


# --------------------------------------------------------------------------------------------
# Running a case
# --------------------------------------------------------------------------------------------

def _load_main(argv: list[str]) -> int:
    """What a command does with a checkpoint: load it, run one probe forward at its input size,
    and report a bad file as one line (exit 2)."""
    import torch

    import porting
    from porting.checkpoint import CheckpointError, estimate_memory, load_checkpoint
    from porting.graph import GraphError

    path = argv[0]
    try:
        model = porting.load(path)
        ck = load_checkpoint(path)
        pre = ck.get("preprocess") or {}
        if not pre.get("input_size") or estimate_memory(ck) > 512 << 20:
            return 0  # nothing to probe with, or too costly for a fuzz case
        x = torch.zeros(1, 3, *pre["input_size"])
        with torch.no_grad():
            if hasattr(model, "embed"):
                model.embed(x)
            else:
                model(**{model.inputs[0]: x}, outputs=[model.layers[-1]["outputs"][0]]
                      if "label" in model.inputs else None)
    except (CheckpointError, GraphError, ValueError) as exc:  # what validate/export report
        msg = str(exc).splitlines()[0]
        print(f"error: {msg if path in msg else f'{path}: {msg}'}", file=sys.stderr)
        return 2
    return 0


def _runner(name: str) -> Callable[[list[str]], int]:
    if name == "matconvnet":
        from porting.converters.matconvnet import main
    elif name == "caffe":
        from porting.converters.caffe import main
    elif name == "validate":
        from porting.validation.cli import main
    else:
        main = _load_main
    return main


def _location(exc: BaseException) -> str:
    """The innermost frame in the repository (and the innermost frame overall)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if str(ROOT) in f.filename and "/bench/" not in f.filename
            and ".venv" not in f.filename]
    inner = frames[-1] if frames else None
    where = ""
    if ours:
        f = ours[-1]
        where = f"{os.path.relpath(f.filename, ROOT)}:{f.lineno} in {f.name}"
    if inner is not None and (not ours or inner is not ours[-1]):
        where += f" (raised in {Path(inner.filename).name}:{inner.lineno} {inner.name})"
    return where


def _has_nonfinite(path: Path) -> bool:
    """Whether a feature file, read independently, holds NaN/Inf numbers."""
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
            arrays = [arr]
        else:
            from porting.converters.matfile import load_mat

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                arrays = [v for v in load_mat(path).values() if isinstance(v, np.ndarray)]
        return any(a.dtype.kind in "fc" and not np.isfinite(a).all() for a in arrays)
    except Exception:  # noqa: BLE001 - unreadable: nothing could have been scored
        return False


def run_case(case: Case, case_dir: Path, seeds: Seeds, timeout: float) -> Outcome:
    """Write the case's files, run its command in-process, classify what happened."""
    for name, data in case.files.items():
        (case_dir / name).write_bytes(data)
    out_dir = case_dir / "out"
    out_dir.mkdir()
    out = out_dir / "net.pth"
    argv = [str(case_dir / a) for a in case.argv]
    if case.run in ("matconvnet", "caffe"):
        argv += ["-o", str(out), "-q"]
    elif case.run == "validate":
        argv = ["--root", str(seeds.mini), "--features", *argv, "-q"]
    main = _runner(case.run)
    stdout, stderr = io.StringIO(), io.StringIO()

    def alarm(signum, frame):
        raise Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    rc: int | None = None
    failure: Outcome | None = None
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
                warnings.catch_warnings():
            warnings.simplefilter("default")
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except Hang:
        failure = Outcome("FAIL:hang", f"over {timeout}s")
    except RecursionError as exc:
        failure = Outcome("FAIL:traceback", f"RecursionError at {_location(exc)}")
    except Exception as exc:  # noqa: BLE001 - this is what the campaign looks for
        failure = Outcome("FAIL:traceback", f"{type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:120] if str(exc) else ''} "
                          f"at {_location(exc)}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if (case_dir / MARKER).exists():
        return Outcome("FAIL:payload", "a pickle payload ran")
    if failure is not None:
        return failure
    inputs = set(case.files) | {"out"}
    left = sorted(p.name for p in case_dir.iterdir() if p.name not in inputs)
    left += sorted(p.name for p in out_dir.iterdir() if not (rc == 0 and p == out))
    if left:
        return Outcome("FAIL:leftover", f"rc {rc}, left {left[:4]}")
    err = [line for line in stderr.getvalue().splitlines() if line.strip()]
    if rc == 0:
        if case.run in ("matconvnet", "caffe"):
            from porting.checkpoint import CheckpointError

            try:
                import porting

                porting.load(out)
            except CheckpointError as exc:
                return Outcome("FAIL:unloadable", str(exc).splitlines()[0][:200])
        if case.run == "validate" and any(_has_nonfinite(case_dir / n) for n in case.files):
            return Outcome("FAIL:nonfinite", "exit 0 on a file holding NaN/Inf")
        return Outcome("ok")
    if rc == 2:
        names = [Path(a).name for a in case.argv]
        if len(err) == 1 and err[0].startswith("error: ") and any(n in err[0] for n in names):
            return Outcome("clean", err[0][:200])
        return Outcome("FAIL:unclean", " | ".join(err)[:300] or "(nothing on stderr)")
    return Outcome("FAIL:exit", f"exit {rc}: {' | '.join(err)[:200]}")


# --------------------------------------------------------------------------------------------
# The campaign
# --------------------------------------------------------------------------------------------

@dataclass
class FormatResult:
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _limit_memory(extra: int = 6 << 30) -> None:
    """Cap the address space so that a runaway allocation fails here rather than the box."""
    import resource

    try:
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        want = vm + extra
        if hard == resource.RLIM_INFINITY or want < hard:
            resource.setrlimit(resource.RLIMIT_AS, (want, hard))
    except (OSError, ValueError, StopIteration):
        pass


def _after_fork() -> None:
    """Forget thread pools the parent started: their threads do not exist in a forked child,
    and waiting on them would hang (the converters hash the source file on a worker thread;
    libgomp's team, which torch's kernels enter whenever more than one thread is set, hung
    a case in a forked child of the test suite)."""
    import torch

    torch.set_num_threads(1)  # no OpenMP team after fork: every kernel runs inline
    common = sys.modules.get("porting.converters.common")
    if common is not None and getattr(common, "_HASHER", None) is not None:
        common._HASHER = None


def _run_cases(fmt: str, start: int, cases: int, seed: int, workdir: Path, timeout: float,
               seeds: Seeds, progress: bool, log: Path, current: Path) -> None:
    """Run cases ``start..cases-1`` of ``fmt``, one JSON line each in ``log``; before a case
    runs, its index and mutation are written to ``current`` (read back if the process dies)."""
    from porting.progress import Progress

    bar = Progress(cases - start, f"fuzz {fmt}", enabled=progress, unit="case")
    with open(log, "a") as out:
        for i in range(start, cases):
            rng = random.Random(f"{seed}:{fmt}:{i}")
            case_dir = workdir / f"case-{fmt}"
            shutil.rmtree(case_dir, ignore_errors=True)
            case_dir.mkdir(parents=True)
            record: dict[str, Any] = {"case": i}
            try:
                try:
                    case = make_case(fmt, rng, seeds, case_dir)
                except Exception as exc:  # noqa: BLE001 - the generator's own limits
                    record.update(kind="skipped", mutation="generation failed",
                                  detail=repr(exc)[:200])
                else:
                    current.write_text(json.dumps({"case": i, "mutation": case.mutation}))
                    outcome = run_case(case, case_dir, seeds, timeout)
                    record.update(kind=outcome.kind, mutation=case.mutation,
                                  detail=outcome.detail)
            finally:
                shutil.rmtree(case_dir, ignore_errors=True)
                bar.update(1)
            out.write(json.dumps(record) + "\n")
            out.flush()
    bar.close()


def campaign(formats: list[str], cases: int, seed: int, workdir: Path, timeout: float = 20.0,
             progress: bool = True, findings: Path | None = None,
             seeds: Seeds | None = None,
             on_format: Callable[[dict[str, FormatResult]], None] | None = None,
             ) -> dict[str, FormatResult]:
    """Run ``cases`` cases of each format; returns per-format results (``on_format`` is
    called with the results so far after each format, e.g. to save them).

    Cases run in a forked child, in-process there (cheap); if a case kills it (a segfault in
    a C extension, the OOM killer), that case is recorded as ``FAIL:crash`` and a new child
    carries on with the next one.
    """
    seeds = seeds or Seeds(workdir)
    results: dict[str, FormatResult] = {}
    for fmt in formats:
        res = FormatResult()
        t0 = time.perf_counter()
        log, current = workdir / f"{fmt}.jsonl", workdir / f"{fmt}.current"
        log.unlink(missing_ok=True)
        start = 0
        while start < cases:
            current.unlink(missing_ok=True)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the child: run, then leave without the parent's clean-ups
                code = 0
                try:
                    _after_fork()
                    _run_cases(fmt, start, cases, seed, workdir, timeout, seeds, progress, log,
                               current)
                except BaseException:  # noqa: BLE001
                    traceback.print_exc()
                    code = 3
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                break
            if os.WIFEXITED(status):
                raise RuntimeError(f"fuzz child for {fmt} failed (exit {os.WEXITSTATUS(status)})")
            how = f"killed by signal {os.WTERMSIG(status)}"
            info = json.loads(current.read_text()) if current.exists() else {"case": start,
                                                                             "mutation": "?"}
            with open(log, "a") as out:
                out.write(json.dumps({"case": info["case"], "kind": "FAIL:crash",
                                      "mutation": info["mutation"], "detail": how}) + "\n")
            start = info["case"] + 1
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            res.outcomes[rec["kind"]] += 1
            if rec["kind"] != "skipped":
                res.cases += 1
            if rec["kind"].startswith("FAIL") or rec["kind"] == "skipped":
                res.failures.append(rec)
        res.seconds = time.perf_counter() - t0
        results[fmt] = res
        if findings is not None and fmt in CONVERTER_FORMATS + ("features",):
            _append_findings(findings, fmt, res, seed)
        if on_format is not None:
            on_format(results)
    return results


def _append_findings(path: Path, fmt: str, res: FormatResult, seed: int) -> None:
    seen: set[str] = set()
    lines = []
    old = path.read_text() if path.exists() else ""
    for f in res.failures:
        if not f["kind"].startswith("FAIL"):
            continue
        key = re.sub(r"\d+/\d+|at \d+|\b\d+\b", "N", f"{f['kind']} {f['detail']}")[:160]
        if key in seen:
            continue
        seen.add(key)
        line = (f"- {fmt}, seed {seed} case {f['case']}: {f['mutation']} -> {f['kind']}: "
                f"{f['detail']}")
        if line not in old:
            lines.append(line)
    if lines:
        with open(path, "a") as fh:
            fh.write("\n".join(lines) + "\n")


def table(results: dict[str, FormatResult]) -> str:
    kinds = ["ok", "clean"] + sorted({k for r in results.values() for k in r.outcomes
                                      if k not in ("ok", "clean")})
    rows = [["format", "cases", *kinds, "s"]]
    for fmt, r in results.items():
        rows.append([fmt, str(r.cases), *[str(r.outcomes.get(k, 0)) for k in kinds],
                     f"{r.seconds:.0f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def to_json(results: dict[str, FormatResult], args: dict[str, Any]) -> dict[str, Any]:
    return {"args": args, "formats": {
        fmt: {"cases": r.cases, "outcomes": dict(r.outcomes), "seconds": round(r.seconds, 1),
              "failures": r.failures} for fmt, r in results.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--formats", default=",".join(FORMATS),
                   help=f"comma-separated, from {', '.join(FORMATS)} (default all)")
    p.add_argument("--cases", type=int, default=1000, help="cases per format (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per case (default 20)")
    p.add_argument("--json", help="write the results (with every failure) as JSON")
    p.add_argument("--workdir", help="where cases run (default: a fresh temporary folder)")
    p.add_argument("--findings", default="/tmp/fuzz_findings.md",
                   help="append converter-format failures here ('' = nowhere)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    args = p.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        p.error(f"unknown format(s) {bad}; known: {', '.join(FORMATS)}")
    if args.cases < 1 or args.timeout <= 0:
        p.error("--cases and --timeout must be positive")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _limit_memory()
    own = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="reid-fuzz-")) if own else Path(args.workdir)
    def save(results: dict[str, FormatResult]) -> None:
        if args.json:  # after every format, so that a long campaign keeps what it has done
            from porting.outputs import atomic_write

            text = json.dumps(to_json(results, vars(args)), indent=1)
            atomic_write(args.json, lambda tmp: Path(tmp).write_text(text + "\n"))

    try:
        results = campaign(formats, args.cases, args.seed, workdir, args.timeout,
                           progress=not args.quiet,
                           findings=Path(args.findings) if args.findings else None,
                           on_format=save)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(results))
    for fmt, r in results.items():
        for f in r.failures[:5]:
            print(f"{fmt} case {f['case']}: {f['mutation']} -> {f['kind']}: {f['detail']}")
    return 0
