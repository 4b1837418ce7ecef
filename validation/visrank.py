"""Ranked-list pictures, as torchreid's ``visualize_ranked_results``: one PNG per query.

Each PNG is one row: the query (black frame), a gap, then the first ``topk`` entries of the
query's ranked gallery, each framed by what the official protocol makes of it:
green = a true match (same identity, other camera), red = a false match, grey = junk (id -1,
or the same identity in the query's camera), whose picture is also greyed out. Junk stays in
the row (the ranking holds it; the official metrics skip it), so the row shows exactly the
ranked list. Layout: :func:`cell_box`. Pure: images and labels in, PNG files out.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["CELL", "BORDER", "GAP", "QUERY_GAP", "COLOURS", "cell_box", "entry_kinds",
           "select_queries", "visualize_ranked_results"]

CELL = (128, 64)  # (height, width) of each picture, frame included
BORDER = 4  # frame width in pixels
GAP = 4  # white space between gallery cells
QUERY_GAP = 16  # white space between the query and the first gallery cell
COLOURS = {"query": (0, 0, 0), "match": (0, 200, 0), "false": (220, 0, 0),
           "junk": (128, 128, 128)}


def cell_box(slot: int) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` (exclusive) of slot 0 (the query) or 1..topk."""
    h, w = CELL
    left = GAP + (0 if slot == 0 else w + QUERY_GAP + (slot - 1) * (w + GAP))
    return left, GAP, left + w, GAP + h


def entry_kinds(ranked: Sequence[int], q_pid: int, q_camid: int, g_pids: np.ndarray,
                g_camids: np.ndarray) -> list[str]:
    """"match" / "false" / "junk" of each ranked gallery index (the official good/junk sets)."""
    out = []
    for i in ranked:
        p, c = int(g_pids[i]), int(g_camids[i])
        if p == -1 or (p == q_pid and c == q_camid):
            out.append("junk")
        elif p == q_pid:
            out.append("match")
        else:
            out.append("false")
    return out


def select_queries(spec: str | int | None, names: Sequence[str], default: int = 10) -> list[int]:
    """Which queries to draw: None -> the first ``default``; ``N`` (an int, or one number in
    a string) -> the first N; otherwise comma-separated 0-based indices or query file names.
    """
    n = len(names)
    if spec is None:
        return list(range(min(default, n)))
    if isinstance(spec, int) or (spec.strip().isdigit() and "," not in spec):
        k = int(spec)
        if k < 1:
            raise ValueError(f"--visrank-queries N needs N >= 1, got {k}")
        return list(range(min(k, n)))
    index = {name: i for i, name in enumerate(names)}
    out = []
    for tok in (t.strip() for t in str(spec).split(",")):
        if not tok:
            continue
        if tok.isdigit():
            i = int(tok)
            if i >= n:
                raise ValueError(f"query index {i} out of range 0..{n - 1}")
            out.append(i)
        elif tok in index:
            out.append(index[tok])
        else:
            raise ValueError(f"{tok!r} is neither a query index nor a query file name")
    return out


def _picture(item: Any) -> Image.Image:
    if isinstance(item, Image.Image):
        im = item
    elif isinstance(item, np.ndarray):
        im = Image.fromarray(np.ascontiguousarray(item).astype(np.uint8))
    else:
        with Image.open(os.fspath(item)) as f:
            im = f.convert("RGB")
    return im.convert("RGB")


def _cell(item: Any, colour: tuple[int, int, int], grey: bool) -> Image.Image:
    h, w = CELL
    inner = _picture(item).resize((w - 2 * BORDER, h - 2 * BORDER), Image.Resampling.BILINEAR)
    if grey:  # junk: washed-out grey
        g = np.asarray(inner.convert("L"), dtype=np.float32)
        inner = Image.fromarray((0.5 * g + 0.5 * 200).astype(np.uint8)).convert("RGB")
    out = Image.new("RGB", (w, h), colour)
    out.paste(inner, (BORDER, BORDER))
    return out


def visualize_ranked_results(
    query_images: Sequence[Any],
    gallery_images: Sequence[Any],
    ranking: np.ndarray,
    q_pids: Sequence[int],
    g_pids: Sequence[int],
    q_camids: Sequence[int],
    g_camids: Sequence[int],
    out_dir: str | os.PathLike[str],
    topk: int = 10,
    queries: Sequence[int] | None = None,
    query_names: Sequence[str] | None = None,
) -> list[Path]:
    """Write ``<out_dir>/<query index>_<query name>.png`` for each query in ``queries``.

    ``*_images``: paths, PIL images or uint8 HxWx3 arrays; ``ranking``: ``(n_query, >= topk)``
    ranked gallery indices (``RankingResult.ranking``); labels as in the official protocol.
    Returns the files written, in ``queries`` order.
    """
    if topk < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    rank = np.asarray(ranking)
    gp, gc = np.asarray(g_pids), np.asarray(g_camids)
    qs = range(len(query_images)) if queries is None else queries
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    k = min(topk, rank.shape[1])
    width = cell_box(k)[2] + GAP
    height = CELL[0] + 2 * GAP
    written = []
    for qi in qs:
        row = rank[qi, :k]
        kinds = entry_kinds(row, int(q_pids[qi]), int(q_camids[qi]), gp, gc)
        canvas = Image.new("RGB", (width, height), (255, 255, 255))
        canvas.paste(_cell(query_images[qi], COLOURS["query"], False), cell_box(0)[:2])
        for slot, (gi, kind) in enumerate(zip(row, kinds, strict=True), start=1):
            canvas.paste(_cell(gallery_images[int(gi)], COLOURS[kind], kind == "junk"),
                         cell_box(slot)[:2])
        name = Path(str(query_names[qi])).stem if query_names is not None else "query"
        path = out / f"{qi:05d}_{name}.png"
        canvas.save(path, format="PNG")
        written.append(path)
    return written
