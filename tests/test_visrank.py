"""Ranked-list PNGs: the frame colour of every cell against the ranking and the labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from porting.validation import metrics
from porting.validation.cli import main as validate_main
from porting.validation.datasets import load_market1501
from porting.validation.mini import build_mini_market
from porting.validation.visrank import (
    BORDER,
    CELL,
    COLOURS,
    cell_box,
    select_queries,
    visualize_ranked_results,
)


def _expected(q_pid: int, q_cam: int, g_pid: int, g_cam: int) -> str:
    """The official good / junk rule, written out again."""
    if g_pid == -1:
        return "junk"
    if g_pid == q_pid:
        return "junk" if g_cam == q_cam else "match"
    return "false"


def _frames(png: Path, k: int) -> list[tuple[int, int, int]]:
    """Colour of the frame (middle of the left edge) of slots 0..k."""
    im = np.asarray(Image.open(png).convert("RGB"))
    out = []
    for slot in range(k + 1):
        left, top, right, bottom = cell_box(slot)
        out.append(tuple(int(v) for v in im[(top + bottom) // 2, left + BORDER // 2]))
        assert tuple(im[top + 1, right - 2]) == out[-1]  # the frame goes all round
    return out


def test_frame_colours_follow_the_ranking(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n_q, n_g, k = 3, 12, 8
    colours = rng.integers(0, 256, (n_g, 3))
    gallery = [np.full((40, 20, 3), c, np.uint8) for c in colours]
    queries = [np.full((40, 20, 3), 30 * i, np.uint8) for i in range(n_q)]
    q_pids, q_cams = np.array([1, 2, 3]), np.array([1, 2, 1])
    g_pids = np.array([1, 1, 2, -1, 3, 3, 0, 2, 1, 4, 2, -1])
    g_cams = np.array([1, 2, 3, 1, 1, 4, 2, 2, 3, 5, 6, 2])
    ranking = np.stack([rng.permutation(n_g) for _ in range(n_q)])
    # query 0 (id 1, camera 1): a true match (gallery 1) then its own-camera junk (gallery 0)
    rest = [j for j in ranking[0] if j not in (1, 0)]
    ranking[0] = [1, 0, *rest]
    files = visualize_ranked_results(queries, gallery, ranking, q_pids, g_pids, q_cams,
                                     g_cams, tmp_path, topk=k, queries=[2, 0],
                                     query_names=["a.jpg", "b.jpg", "c.jpg"])
    assert [f.name for f in files] == ["00002_c.png", "00000_a.png"]
    seen = set()
    for f, qi in zip(files, (2, 0), strict=True):
        frames = _frames(f, k)
        assert frames[0] == COLOURS["query"]
        kinds = [_expected(q_pids[qi], q_cams[qi], g_pids[j], g_cams[j]) for j in ranking[qi, :k]]
        assert frames[1:] == [COLOURS[x] for x in kinds]
        seen |= set(kinds)
        im = np.asarray(Image.open(f).convert("RGB"))
        for slot, (j, kind) in enumerate(zip(ranking[qi, :k], kinds, strict=True), start=1):
            left, top, _, _ = cell_box(slot)
            centre = im[top + CELL[0] // 2, left + CELL[1] // 2].astype(int)
            if kind == "junk":  # greyed
                assert centre[0] == centre[1] == centre[2]
            else:
                assert np.abs(centre - colours[j]).max() <= 2
    assert seen == {"match", "false", "junk"}  # the case exercises every colour


def test_select_queries() -> None:
    names = ["x.jpg", "y.jpg", "z.jpg"]
    assert select_queries(None, names, default=2) == [0, 1]
    assert select_queries("5", names) == [0, 1, 2]
    assert select_queries("2,0", names) == [2, 0]
    assert select_queries("y.jpg,0", names) == [1, 0]
    with pytest.raises(ValueError, match="out of range"):
        select_queries("0,7", names)
    with pytest.raises(ValueError, match="neither"):
        select_queries("w.jpg,1", names)


def test_validate_visrank_frames_match_the_official_ranking(tmp_path: Path) -> None:
    root = build_mini_market(tmp_path / "mini")
    data = load_market1501(root, parts=("query", "gallery"))
    q, g = data.query, data.gallery
    rng = np.random.default_rng(5)
    qf = rng.standard_normal((len(q.pids), 8)).astype(np.float32)
    gf = rng.standard_normal((len(g.pids), 8)).astype(np.float32)
    np.save(tmp_path / "q.npy", qf)
    np.save(tmp_path / "g.npy", gf)
    out, js = tmp_path / "ranked", tmp_path / "r.json"
    assert validate_main(["--root", str(root), "--features", str(tmp_path / "q.npy"),
                          str(tmp_path / "g.npy"), "--visrank", "5", "--visrank-queries",
                          f"1,{q.names[3]}", "--visrank-dir", str(out), "--json",
                          str(js)]) == 0
    files = [Path(f) for f in json.loads(js.read_text())["visrank"]]
    assert [f.name[:5] for f in files] == ["00001", "00003"]
    ranking = metrics.evaluate_market(metrics.sqdist(qf, gf), q.pids, g.pids, q.camids,
                                      g.camids, None, keep_ranking=True).ranking
    for f, qi in zip(files, (1, 3), strict=True):
        kinds = [_expected(q.pids[qi], q.camids[qi], g.pids[j], g.camids[j])
                 for j in ranking[qi, :5]]
        assert _frames(f, 5)[1:] == [COLOURS[x] for x in kinds]
