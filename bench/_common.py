"""Shared helpers of the converter benches: one measured step per fresh subprocess.

Each measured step (a baseline read, a conversion) runs in its own Python process so that
nothing one step allocated or cached (numpy/torch allocator pools, imported modules, lazily
initialised kernels) flatters or burdens the next. In that process the bench script

1. imports what the step needs (not measured),
2. reads the resident set size (``VmRSS``) and resets the kernel's high-water mark
   (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0) so that import-time transients do not
   count,
3. runs the step once under ``time.perf_counter`` (wall) and ``time.process_time`` (CPU of
   all the process's threads: less sensitive to a busy shared machine than wall time, but
   it counts the CPU that idle-spinning OpenMP threads burn),
4. reads the high-water mark (``VmHWM``) again: ``peak - rss_before`` is the memory the step
   added at its peak.

Resident memory is used rather than ``tracemalloc`` because tracemalloc sees numpy's buffers
but not torch's CPU allocator nor protobuf's (upb arena) memory, which are most of what a
conversion allocates. Where the high-water mark cannot be reset, ``ru_maxrss`` (the lifetime
peak, import transients included: an over-estimate) is used and the bench's output says so.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
_MARK = "@@BENCH@@ "


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def measure_here(step: Callable[[], Any]) -> dict[str, Any]:
    """Run ``step()`` once in this process: wall time and peak resident memory it added."""
    gc.collect()
    before = (_status_kib("VmRSS") or 0) * 1024
    reset = _reset_peak()
    c0, t0 = time.process_time(), time.perf_counter()
    step()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if reset and _status_kib("VmHWM") is not None:
        peak = _status_kib("VmHWM") * 1024
        how = "VmHWM"
    else:  # lifetime peak: includes import transients, an over-estimate
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        how = "ru_maxrss"
    return {"wall_s": wall, "cpu_s": cpu, "rss_before": before, "peak": peak,
            "peak_added": max(peak - before, 0), "how": how}


def child_report(result: dict[str, Any]) -> None:
    """Print a measured step's result for the parent (one marked JSON line)."""
    print(_MARK + json.dumps(result), flush=True)


def run_child(script: str, args: Sequence[str], timeout: float = 600) -> dict[str, Any]:
    """Run ``python script *args`` in a fresh process and return its reported result."""
    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(_MARK):
            if proc.returncode != 0:
                break
            return json.loads(line[len(_MARK):])
    raise RuntimeError(f"bench step {' '.join(args)} failed (exit {proc.returncode}):\n"
                       f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def interleaved(script: str, steps: Sequence[tuple[str, Sequence[str]]], repeats: int,
                after_each: Callable[[], None] | None = None,
                fewer: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
    """Run every step ``repeats`` times, round-robin (step 1, step 2, ..., step 1, ...), each
    in a fresh process, so that slow and fast phases of a shared machine hit all steps alike.

    Per step: best (minimum) wall time, all wall times, and the largest peak memory added.
    ``fewer`` caps the runs of slow steps (``{"main": 2}``); ``after_each`` runs after every
    child (e.g. to delete the checkpoint it wrote).
    """
    fewer = fewer or {}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in steps}
    for r in range(repeats):
        for name, args in steps:
            if r >= fewer.get(name, repeats):
                continue
            runs[name].append(run_child(script, args))
            if after_each is not None:
                after_each()
    return {name: {"wall_s": min(r["wall_s"] for r in rs), "walls": [r["wall_s"] for r in rs],
                   "cpu_s": min(r["cpu_s"] for r in rs),
                   "peak_added": max(r["peak_added"] for r in rs), "how": rs[0]["how"]}
            for name, rs in runs.items()}


def converter_bench_parser(doc: str, keep_help: str) -> argparse.ArgumentParser:
    """The options both converter benches take (each adds its own)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3,
                   help="fresh-process runs per step, interleaved; the best time is kept")
    p.add_argument("--workdir", help="where to write the files (default: a new /tmp dir)")
    p.add_argument("--keep", action="store_true", help=keep_help)
    p.add_argument("--profile", action="store_true",
                   help="also print a cProfile of main (cumulative and own time)")
    p.add_argument("--main-repeats", type=int, default=2,
                   help="runs of the slow main step (default 2, at most --repeats)")
    p.add_argument("--threads", type=int,
                   help="OMP_NUM_THREADS for every step (default: torch's own choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--_step", nargs="+", help=argparse.SUPPRESS)
    return p


def record_and_drop(out: Path, sizes: list[int]) -> None:
    """Note the size of the checkpoint a step wrote, then delete it (disk stays small)."""
    if out.exists():
        sizes.append(out.stat().st_size)
        out.unlink()


def set_threads(n: int | None) -> str:
    """Give every child ``n`` intra-op threads (torch reads OMP_NUM_THREADS at start-up)."""
    if n:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(n)
    return os.environ.get("OMP_NUM_THREADS", "default")


def child_profile(script: str, args: Sequence[str], top: int = 35) -> str:
    """cProfile of one step in a fresh process (the child prints it; see ``profile_here``)."""
    env = dict(os.environ, BENCH_PROFILE="1", BENCH_PROFILE_TOP=str(top))
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                          env=env, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"profile of {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return "\n".join(line.rstrip() for line in proc.stdout.splitlines()
                     if not line.startswith(_MARK))


def run_step_in_child(step: Callable[[], Any]) -> None:
    """The child side: profile ``step`` if the parent asked for it, else measure and report."""
    if os.environ.get("BENCH_PROFILE"):
        print(profile_here(step, top=int(os.environ.get("BENCH_PROFILE_TOP", "35"))))
        return
    child_report(measure_here(step))


def profile_here(step: Callable[[], Any], top: int = 35) -> str:
    """cProfile one run of ``step``: the ``top`` entries by cumulative time, then by own time
    (the profiler slows Python-heavy code down more than C kernels: read it for shares)."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    step()
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    out.write(f"-- sorted by cumulative time (top {top})\n")
    stats.sort_stats("cumulative").print_stats(top)
    out.write(f"-- sorted by own time (top {top * 2 // 3})\n")
    stats.sort_stats("tottime").print_stats(top * 2 // 3)
    return out.getvalue()


def mib(n: float) -> str:
    return f"{n / MIB:,.1f}"


def machine() -> str:
    """One line describing this machine (CPU model, cores, memory, Python/numpy/torch)."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) / 1024 ** 3
    try:
        load = "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "load unknown"
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Python "
            f"{sys.version.split()[0]}, {load}")


def results_rows(results: dict[str, dict[str, Any]], base: str,
                 file_bytes: int) -> tuple[list[list[str]], list[str]]:
    """Table rows: per step its best time, the runs, time ratio to ``base``, peak memory added
    (MiB, and as a multiple of the file size) and its excess over ``base``'s peak."""
    b = results[base]
    rows = []
    for step, r in results.items():
        rows.append([
            step, f"{r['wall_s']:.3f}", " ".join(f"{w:.2f}" for w in r["walls"]),
            f"{r['wall_s'] / b['wall_s']:.2f}x", f"{r['cpu_s']:.2f}",
            f"{r['cpu_s'] / b['cpu_s']:.2f}x", mib(r["peak_added"]),
            f"{r['peak_added'] / file_bytes:.2f}x",
            f"{(r['peak_added'] - b['peak_added']) / file_bytes:+.2f}x",
        ])
    headers = ["step", "best s", "runs s", f"time / {base}", "cpu s", f"cpu / {base}",
               "peak added MiB",
               "peak added / file", f"(peak - {base} peak) / file"]
    return rows, headers
