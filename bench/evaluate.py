"""Time the official Market-1501 evaluation against the bare distance product inside it.

Generates seeded, Market-sized, L2-normalised random features (identity centre + noise, so the
rankings are not trivial) with Market-like labels, then prints, in one run:

* the bare query x gallery product (``torch.mm``; for a gallery too large to hold the whole
  matrix, the same product chunk by chunk into one reused buffer);
* :func:`porting.validation.metrics.evaluate_market_features` with the official
  ``rank_size = 2000`` (distance + stable top-k + AP/CMC);
* their ratio (best of ``--repeats`` interleaved runs each) and the peak resident memory the
  evaluation adds on top of the features.

    python bench/evaluate.py                    # Market-1501: 3368 x 19732, d = 2048
    python bench/evaluate.py --gallery 519732   # Market-1501+500k
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

from porting.validation.metrics import (
    DEFAULT_CHUNK_BYTES,
    OFFICIAL_RANK_SIZE,
    evaluate_market_features,
)

MARKET_GALLERY = 19732
MARKET_JUNK, MARKET_DISTRACTORS, MARKET_TEST_IDS = 3819, 2793, 750


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples the resident set size in a thread: the peak while the block runs."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = _rss_bytes()
        self.peak = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


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
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    chunk_bytes = args.chunk_mb * 2**20

    q, g, labels = make_data(args.query, args.gallery, args.dim, args.seed)
    print(f"query {tuple(q.shape)}  gallery {tuple(g.shape)}  rank_size {args.rank_size}  "
          f"threads {torch.get_num_threads()}  chunk {args.chunk_mb} MiB")

    def evaluate():
        return evaluate_market_features(
            q, g, labels["q_pids"], labels["g_pids"], labels["q_camids"], labels["g_camids"],
            rank_size=args.rank_size, chunk_bytes=chunk_bytes,
        )

    # the whole matrix in one product when it is small; else chunks into one reused buffer
    whole = args.query * args.gallery * 4 <= 2 * chunk_bytes
    rows = max(1, min(args.query, chunk_bytes // (4 * args.gallery)))
    buf = None if whole else torch.empty(rows, args.gallery)

    def bare() -> None:
        if whole:
            torch.mm(q, g.T)
            return
        for start in range(0, args.query, rows):
            r = slice(start, min(start + rows, args.query))
            torch.mm(q[r], g.T, out=buf[: r.stop - r.start])

    t_bare: list[tuple[float, float]] = []
    t_eval: list[tuple[float, float]] = []
    with PeakRSS() as mem:
        result = timed(evaluate, t_eval)
    timed(bare, t_bare)
    for _ in range(args.repeats - 1):  # back-to-back pairs: a shared machine's load drifts
        timed(evaluate, t_eval)
        timed(bare, t_bare)
    wall_b, cpu_b = min(t[0] for t in t_bare), min(t[1] for t in t_bare)
    wall_e, cpu_e = min(t[0] for t in t_eval), min(t[1] for t in t_eval)
    pairs = sorted(e[0] / b[0] for e, b in zip(t_eval, t_bare, strict=True))
    runs = ", ".join
    print(f"bare distance product ({'one mm' if whole else f'{rows}-row chunks'}): "
          f"{wall_b:.3f} s wall, {cpu_b:.3f} s CPU   "
          f"(wall runs: {runs(f'{t[0]:.2f}' for t in t_bare)})")
    print(f"official evaluation (sqdist + stable top-{args.rank_size} + AP/CMC): "
          f"{wall_e:.3f} s wall, {cpu_e:.3f} s CPU   "
          f"(wall runs: {runs(f'{t[0]:.2f}' for t in t_eval)})")
    print(f"ratio evaluation / bare product: {wall_e / wall_b:.3f} (best wall), "
          f"{pairs[len(pairs) // 2]:.3f} (median of back-to-back pairs), "
          f"{cpu_e / cpu_b:.3f} (best CPU time)")
    print(f"peak RSS during evaluation: {mem.peak / 2**30:.2f} GiB "
          f"(+{(mem.peak - mem.start) / 2**30:.2f} GiB over the "
          f"{(q.nbytes + g.nbytes) / 2**30:.2f} GiB of features)")
    print(f"mAP {result.mAP:.4f} (queries with a good image: {result.mAP_valid:.4f})  "
          f"r1 {result.r1:.4f}  r5 {result.r5:.4f}  r10 {result.r10:.4f}")


if __name__ == "__main__":
    main()
