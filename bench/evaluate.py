"""Time the official Market-1501 evaluation against the bare distance product inside it.

Generates seeded, Market-sized, L2-normalised random features (identity centre + noise, so the
rankings are not trivial) with Market-like labels, then prints, in one run:

* the bare query x gallery product (``torch.mm``; for a gallery too large to hold the whole
  matrix, the same product chunk by chunk into one reused buffer, both by query rows and by
  gallery rows; the faster is the floor);
* :func:`porting.validation.metrics.evaluate_market_features` with the official
  ``rank_size = 2000`` (distance + stable top-k + AP/CMC);
* their ratio (best of ``--repeats`` interleaved runs each) and the peak resident and
  anonymous memory the evaluation adds on top of the features.

``--memmap`` writes the gallery to a ``.npy`` file and evaluates it memory-mapped
(``np.load(mmap_mode="r")``), products and evaluation alike (issue #15: <= 1.2x the floor,
< 1 GB anonymous memory). ``--rerank`` also times k-reciprocal re-ranking
(:func:`porting.validation.rerank.re_rank_features`) of the same features against the plain
evaluation, with its peak memory (issue #14: < 6 GB at Market-1501 size).

    python bench/evaluate.py                    # Market-1501: 3368 x 19732, d = 2048
    python bench/evaluate.py --gallery 519732 --memmap   # Market-1501+500k, memory-mapped
    python bench/evaluate.py --dim 512 --rerank --repeats 1
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from porting.validation.metrics import (
    DEFAULT_CHUNK_BYTES,
    OFFICIAL_RANK_SIZE,
    evaluate_market_features,
)
from porting.validation.rerank import re_rank_features

MARKET_GALLERY = 19732
MARKET_JUNK, MARKET_DISTRACTORS, MARKET_TEST_IDS = 3819, 2793, 750


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _anon_bytes() -> int:
    """Anonymous resident memory (not file-backed: a memory-mapped gallery is not in it)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRSS:
    """Samples the resident set size and its anonymous part in a thread: peaks while it runs."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval, self.peak, self.peak_anon = interval, 0, 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        self.peak = max(self.peak, _rss_bytes())
        self.peak_anon = max(self.peak_anon, _anon_bytes())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start, self.start_anon = _rss_bytes(), _anon_bytes()
        self.peak, self.peak_anon = self.start, self.start_anon
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def report(self) -> str:
        return (f"peak RSS {self.peak / 2**30:.2f} GiB (+{(self.peak - self.start) / 2**30:.2f}), "
                f"peak anonymous {self.peak_anon / 2**30:.2f} GiB "
                f"(+{(self.peak_anon - self.start_anon) / 2**30:.2f})")


def make_data(
    n_query: int, n_gallery: int, dim: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, dict[str, np.ndarray]]:
    """Market-like labels (ids, -1 junk, 0000 distractors, cameras 1-6) and unit features."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    n_core = min(n_gallery, MARKET_GALLERY)
    n_junk = n_core * MARKET_JUNK // MARKET_GALLERY
    n_distr = n_core * MARKET_DISTRACTORS // MARKET_GALLERY
    g_pids = np.concatenate([
        rng.integers(1, MARKET_TEST_IDS + 1, n_core - n_junk - n_distr),
        np.full(n_junk, -1), np.zeros(n_distr + n_gallery - n_core, np.int64),
    ])
    g_cams = rng.integers(1, 7, n_gallery)
    q_pids = rng.integers(1, MARKET_TEST_IDS + 1, n_query)
    q_cams = rng.integers(1, 7, n_query)
    centres = torch.randn(MARKET_TEST_IDS + 2, dim, generator=gen)

    def features(pids: np.ndarray) -> torch.Tensor:
        f = torch.randn(len(pids), dim, generator=gen)  # filled in place: no big temporaries
        idx = torch.from_numpy(np.where(pids > 0, pids, MARKET_TEST_IDS + 1))
        for start in range(0, len(pids), 65536):
            rows = slice(start, start + 65536)
            f[rows] += 0.3 * centres[idx[rows]] * torch.from_numpy(pids[rows] > 0)[:, None]
        return f.div_(f.norm(dim=1, keepdim=True))

    labels = dict(q_pids=q_pids, g_pids=g_pids, q_camids=q_cams, g_camids=g_cams)
    return features(q_pids), features(g_pids), labels


def timed(fn: Callable[[], object], log: list[tuple[float, float]]) -> object:
    """Run ``fn``, appending (wall seconds, process CPU seconds) to ``log``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    log.append((time.perf_counter() - wall, time.process_time() - cpu))
    return out


def _memmap_gallery(g: torch.Tensor, workdir: str | None) -> tuple[np.ndarray, Path]:
    path = Path(tempfile.mkdtemp(prefix="bench_evaluate_", dir=workdir)) / "gallery.npy"
    np.save(path, g.numpy())
    return np.load(path, mmap_mode="r"), path


def _floors(q: torch.Tensor, g: torch.Tensor | np.ndarray, chunk_bytes: int) -> dict:
    """The bare products, chunked by query rows and by gallery rows into reused buffers."""
    nq, ng = q.shape[0], g.shape[0]
    gt = torch.from_numpy(g) if isinstance(g, np.ndarray) else g
    rows = max(1, min(nq, chunk_bytes // (4 * ng)))
    cols = max(1, min(ng, chunk_bytes // (4 * nq)))
    buf = torch.empty(max(rows * ng, nq * cols))

    def by_query() -> None:
        for start in range(0, nq, rows):
            r = slice(start, min(start + rows, nq))
            torch.mm(q[r], gt.T, out=buf[: (r.stop - start) * ng].view(-1, ng))

    def by_gallery() -> None:
        for start in range(0, ng, cols):
            block = gt[start : start + cols]
            torch.mm(q, block.T, out=buf[: nq * block.shape[0]].view(nq, -1))

    if nq * ng * 4 <= 2 * chunk_bytes:
        return {"one mm": lambda: torch.mm(q, gt.T)}
    return {f"{rows}-query-row chunks": by_query, f"{cols}-gallery-row chunks": by_gallery}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--query", type=int, default=3368)
    p.add_argument("--gallery", type=int, default=MARKET_GALLERY)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--rank-size", type=int, default=OFFICIAL_RANK_SIZE)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--chunk-mb", type=int, default=DEFAULT_CHUNK_BYTES // 2**20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--memmap", action="store_true", help="evaluate the gallery memory-mapped")
    p.add_argument("--workdir", default=None, help="where --memmap writes its .npy")
    p.add_argument("--rerank", action="store_true", help="also time k-reciprocal re-ranking")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    chunk_bytes = args.chunk_mb * 2**20

    q, g, labels = make_data(args.query, args.gallery, args.dim, args.seed)
    path = None
    if args.memmap:
        g, path = _memmap_gallery(g, args.workdir)
        gc.collect()
    print(f"query {tuple(q.shape)}  gallery {tuple(g.shape)}"
          f"{' memory-mapped' if args.memmap else ''}  rank_size {args.rank_size}  "
          f"threads {torch.get_num_threads()}  chunk {args.chunk_mb} MiB")

    def evaluate():
        return evaluate_market_features(
            q, g, labels["q_pids"], labels["g_pids"], labels["q_camids"], labels["g_camids"],
            rank_size=args.rank_size, chunk_bytes=chunk_bytes,
        )

    floors = _floors(q, g, chunk_bytes)
    t_bare: dict[str, list[tuple[float, float]]] = {name: [] for name in floors}
    t_eval: list[tuple[float, float]] = []
    for fn in floors.values():  # first touch of a memory map: page faults, not products
        fn()
    with PeakRSS() as mem:
        result = timed(evaluate, t_eval)
    for name, fn in floors.items():
        timed(fn, t_bare[name])
    for _ in range(args.repeats - 1):  # back-to-back runs: a shared machine's load drifts
        timed(evaluate, t_eval)
        for name, fn in floors.items():
            timed(fn, t_bare[name])
    runs = ", ".join
    for name, log in t_bare.items():
        walls = runs(f"{t[0]:.2f}" for t in log)
        print(f"bare distance product ({name}): {min(t[0] for t in log):.3f} s wall, "
              f"{min(t[1] for t in log):.3f} s CPU   (wall runs: {walls})")
    floor = min(t_bare, key=lambda name: min(t[0] for t in t_bare[name]))
    wall_b, cpu_b = min(t[0] for t in t_bare[floor]), min(t[1] for t in t_bare[floor])
    wall_e, cpu_e = min(t[0] for t in t_eval), min(t[1] for t in t_eval)
    pairs = sorted(e[0] / b[0] for e, b in zip(t_eval, t_bare[floor], strict=True))
    print(f"official evaluation (sqdist + stable top-{args.rank_size} + AP/CMC): "
          f"{wall_e:.3f} s wall, {cpu_e:.3f} s CPU   "
          f"(wall runs: {runs(f'{t[0]:.2f}' for t in t_eval)})")
    print(f"ratio evaluation / bare product ({floor}): {wall_e / wall_b:.3f} (best wall), "
          f"{pairs[len(pairs) // 2]:.3f} (median of back-to-back pairs), "
          f"{cpu_e / cpu_b:.3f} (best CPU time)")
    print(f"evaluation memory: {mem.report()}; features "
          f"{(q.nbytes + g.nbytes) / 2**30:.2f} GiB")
    print(f"mAP {result.mAP:.4f} (queries with a good image: {result.mAP_valid:.4f})  "
          f"mINP {result.mINP_valid:.4f}  r1 {result.r1:.4f}  r5 {result.r5:.4f}  "
          f"r10 {result.r10:.4f}  r20 {result.r20:.4f}")
    if args.rerank:
        t_rr: list[tuple[float, float]] = []
        with PeakRSS() as mem_rr:
            timed(lambda: re_rank_features(q, g, 20, 6, 0.3), t_rr)
        print(f"k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3): {t_rr[0][0]:.3f} s wall, "
              f"{t_rr[0][1]:.3f} s CPU; ratio to the plain evaluation {t_rr[0][0] / wall_e:.2f} "
              f"(wall), {t_rr[0][1] / cpu_e:.2f} (CPU)")
        print(f"re-ranking memory: {mem_rr.report()} (ratio of added peak RSS to the plain "
              f"evaluation's: {(mem_rr.peak - mem_rr.start) / max(1, mem.peak - mem.start):.1f})")
    if path is not None:
        del g
        path.unlink()
        path.parent.rmdir()


if __name__ == "__main__":
    main()
