"""Ranked-list pictures, as torchreid's ``visualize_ranked_results`` and fast-reid's
``vis_rank_list``: each query and its first ``topk`` gallery images, labelled.

A picture is a sheet of rows, one per query, under a legend of the frame colours. A row is
the query (black frame; its index, identity, camera and AP written under it), a gap, then
the query's ranked gallery, each image framed by what the official protocol makes of it:
green = a true match (same identity, other camera), red = a false match (``0000``
distractors included: the protocol ranks them as ordinary negatives), grey = junk (id -1, or
the same identity in the query's camera), whose picture is also greyed out. Junk stays in
the row (the ranking holds it; the official metrics skip it), so the row shows exactly the
ranked list. Under each gallery image: its rank, its distance to the query, its identity and
camera, and the verdict in words. Layout: :func:`cell_box`, :func:`sheet_size`.

:func:`visualize_ranked_results` writes one PNG per query (``<index>_<name>.png``) and contact
sheets of up to :data:`SHEET_ROWS` queries (``ranked_lists.png``, ``ranked_lists_2.png``...),
each through :func:`porting.outputs.atomic_write`. :func:`select_queries` picks the queries:
the first N, N at random, the N where the model does worst (lowest AP), or named ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from porting.outputs import atomic_write

__all__ = ["CELL", "BORDER", "GAP", "QUERY_GAP", "TEXT_LINES", "LINE_H", "LEGEND_H", "COLOURS",
           "KIND_WORDS", "ORDERS", "SHEET_ROWS", "SHEET_NAME", "Row", "cell_box", "label_box",
           "sheet_size",
           "entry_kinds", "label_font", "select_queries", "draw_sheet", "visualize_ranked_results"]

CELL = (128, 64)  # (height, width) of each picture, frame included
BORDER = 4  # frame width in pixels
GAP = 6  # white space between gallery cells and around the sheet
QUERY_GAP = 16  # white space between the query and the first gallery cell
TEXT_LINES = 3  # label lines under each picture
LINE_H = 12  # pixels per label line
FONT_SIZE = 10
LEGEND_H = 22  # the legend band at the top of a sheet
ROW_H = CELL[0] + TEXT_LINES * LINE_H + GAP  # one query's row, with the space below it
SHEET_ROWS = 25  # queries per contact sheet
SHEET_NAME = "ranked_lists"
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)
COLOURS = {"query": (0, 0, 0), "match": (0, 200, 0), "false": (220, 0, 0),
           "junk": (128, 128, 128)}
KIND_WORDS = {"match": "true match", "false": "false match", "junk": "junk"}
LEGEND = (("query", "query"), ("match", "true match (same id, other camera)"),
          ("false", "false match"), ("junk", "junk (id -1, or same id and camera)"))
#: What the label lines say, after the colour swatches.
LEGEND_NOTE = "labels: #rank d=distance / id camera / verdict"
ORDERS = ("first", "worst", "random")


@cache
def label_font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at :data:`FONT_SIZE` (a bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # Pillow < 10.1: no size
        return ImageFont.load_default()


def cell_box(slot: int, row: int = 0) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` (exclusive) of the framed picture in ``slot`` 0 (the
    query) or 1..topk of the ``row``-th query of a sheet."""
    h, w = CELL
    left = GAP + (0 if slot == 0 else w + QUERY_GAP + (slot - 1) * (w + GAP))
    top = LEGEND_H + GAP + row * ROW_H
    return left, top, left + w, top + h


def label_box(slot: int, row: int = 0) -> tuple[int, int, int, int]:
    """The label band under a picture: :data:`TEXT_LINES` lines of :data:`LINE_H` pixels."""
    left, _, right, bottom = cell_box(slot, row)
    return left, bottom, right + (QUERY_GAP if slot == 0 else GAP) - 2, bottom + TEXT_LINES * LINE_H


def _legend_width() -> int:
    font = label_font()
    swatches = sum(14 + font.getlength(text) + 14 for _, text in LEGEND)
    return int(GAP + swatches + font.getlength(LEGEND_NOTE)) + 3 * GAP  # room for overhang


def sheet_size(n_rows: int, topk: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of a sheet of ``n_rows`` queries and ``topk`` images."""
    width = max(cell_box(topk)[2] + GAP, _legend_width())
    return width, LEGEND_H + GAP + n_rows * ROW_H


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


def select_queries(spec: str | int | None, names: Sequence[str], default: int = 10,
                   order: str = "first", ap: Sequence[float] | None = None,
                   has_match: Sequence[bool] | None = None, seed: int = 0) -> list[int]:
    """Which queries to draw.

    ``spec``: None -> ``default`` queries; ``N`` (an int, or one number in a string) -> N
    queries chosen by ``order``; otherwise comma-separated 0-based indices or query file
    names, in that order (``order`` does not apply). ``order``: ``first`` (file order),
    ``random`` (``seed``; shown in file order) or ``worst`` (lowest ``ap`` first, ties in
    file order; queries without a true match, ``has_match`` False, have no AP and are left
    out).
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    n = len(names)
    if spec is None or isinstance(spec, int) or (spec.strip().isdigit() and "," not in spec):
        k = default if spec is None else int(spec)
        if k < 1:
            raise ValueError(f"--visrank-queries N needs N >= 1, got {k}")
        if order == "first":
            return list(range(min(k, n)))
        if order == "random":
            pick = np.random.default_rng(seed).choice(n, size=min(k, n), replace=False)
            return sorted(int(i) for i in pick)
        if ap is None:
            raise ValueError("order 'worst' needs each query's AP")
        a = np.asarray(ap, dtype=np.float64)
        keep = ~np.isnan(a) if has_match is None else np.asarray(has_match, bool)
        cand = np.flatnonzero(keep)
        return [int(i) for i in cand[np.argsort(a[cand], kind="stable")][:k]]
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


@dataclass(frozen=True)
class Row:
    """One query and its ranked gallery, everything a sheet row shows."""

    index: int  # the query's 0-based index
    query: Any  # a path, PIL image or uint8 HxWx3 array
    pid: int
    camid: int
    gallery: Sequence[Any]  # the first topk ranked gallery images
    g_pids: Sequence[int]
    g_camids: Sequence[int]
    distances: Sequence[float] | None = None
    ap: float | None = None  # fraction; None: not known, NaN: no true match


def _labels(row: Row, kinds: Sequence[str]) -> list[list[str]]:
    """The text lines under the query (slot 0) and under each gallery image."""
    ap = ("AP n/a" if row.ap is None else "no true match" if np.isnan(row.ap)
          else f"AP {100 * row.ap:.1f}%")
    out = [[f"query {row.index}", f"id {row.pid} c{row.camid}", ap]]
    for r, kind in enumerate(kinds):
        d = "" if row.distances is None else f" d={float(row.distances[r]):.3f}"
        out.append([f"#{r + 1}{d}", f"id {int(row.g_pids[r])} c{int(row.g_camids[r])}",
                    KIND_WORDS[kind]])
    return out


def draw_sheet(rows: Sequence[Row], topk: int) -> Image.Image:
    """A contact sheet: the legend band, then one row per query (:func:`cell_box`)."""
    width, height = sheet_size(len(rows), topk)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = label_font()
    x = GAP
    for kind, text in LEGEND:  # a swatch framed like the cells, then its meaning
        draw.rectangle((x, 5, x + 11, 16), fill=BACKGROUND, outline=COLOURS[kind], width=3)
        draw.text((x + 15, 5), text, fill=TEXT, font=font)
        x += int(14 + font.getlength(text) + 14)
    draw.text((x, 5), LEGEND_NOTE, fill=TEXT, font=font)
    for r, row in enumerate(rows):
        k = min(topk, len(row.gallery))
        kinds = entry_kinds(range(k), row.pid, row.camid, np.asarray(row.g_pids[:k]),
                            np.asarray(row.g_camids[:k]))
        sheet.paste(_cell(row.query, COLOURS["query"], False), cell_box(0, r)[:2])
        for slot, kind in enumerate(kinds, start=1):
            sheet.paste(_cell(row.gallery[slot - 1], COLOURS[kind], kind == "junk"),
                        cell_box(slot, r)[:2])
        for slot, lines in enumerate(_labels(row, kinds)):
            left, top, _, _ = label_box(slot, r)
            for i, line in enumerate(lines):
                draw.text((left + 1, top + 1 + i * LINE_H), line, fill=TEXT, font=font)
    return sheet


def _save(image: Image.Image, path: Path) -> Path:
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
    return path


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
    distances: Mapping[int, Sequence[float]] | np.ndarray | None = None,
    ap: Sequence[float] | None = None,
    sheets: bool = True,
) -> list[Path]:
    """Write ``<out_dir>/<query index>_<query name>.png`` for each query in ``queries`` and,
    with ``sheets``, contact sheets of them all (:data:`SHEET_NAME` ``.png``, then ``_2``...).

    ``*_images``: paths, PIL images or uint8 HxWx3 arrays; ``ranking``: ``(n_query, >= topk)``
    ranked gallery indices (``RankingResult.ranking``); labels as in the official protocol;
    ``distances[q]``: the distances of query ``q``'s ranked entries (in ranking order);
    ``ap``: each query's AP (a fraction, NaN without a true match). Returns the files
    written: the per-query ones in ``queries`` order, then the sheets.
    """
    if topk < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    rank = np.asarray(ranking)
    gp, gc = np.asarray(g_pids), np.asarray(g_camids)
    qs = list(range(len(query_images)) if queries is None else queries)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    k = min(topk, rank.shape[1])
    rows = []
    for qi in qs:
        idx = [int(j) for j in rank[qi, :k]]
        rows.append(Row(qi, query_images[qi], int(q_pids[qi]), int(q_camids[qi]),
                        [gallery_images[j] for j in idx], gp[idx].tolist(), gc[idx].tolist(),
                        None if distances is None else list(distances[qi])[:k],
                        None if ap is None else float(ap[qi])))
    written = []
    for row in rows:
        name = (Path(str(query_names[row.index])).stem if query_names is not None
                else "query")
        written.append(_save(draw_sheet([row], k), out / f"{row.index:05d}_{name}.png"))
    if sheets and len(rows) > 1:
        for s, start in enumerate(range(0, len(rows), SHEET_ROWS), start=1):
            suffix = "" if s == 1 else f"_{s}"
            written.append(_save(draw_sheet(rows[start:start + SHEET_ROWS], k),
                                 out / f"{SHEET_NAME}{suffix}.png"))
    return written
