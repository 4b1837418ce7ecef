"""Ranked-list pictures read back: their size, the colour of every frame against the ranking
and the labels, and the text of every label (rendered again with the same font and found
pixel for pixel where it belongs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from porting.validation import metrics
from porting.validation.cli import main as validate_main
from porting.validation.datasets import load_market1501
from porting.validation.mini import build_mini_market
from porting.validation.visrank import (
    BORDER,
    CELL,
    COLOURS,
    LEGEND_H,
    LINE_H,
    SHEET_NAME,
    TEXT_LINES,
    cell_box,
    label_box,
    label_font,
    select_queries,
    sheet_size,
    visualize_ranked_results,
)


def _expected(q_pid: int, q_cam: int, g_pid: int, g_cam: int) -> str:
    """The official good / junk rule, written out again."""
    if g_pid == -1:
        return "junk"
    if g_pid == q_pid:
        return "junk" if g_cam == q_cam else "match"
    return "false"


def _frames(im: np.ndarray, k: int, row: int = 0) -> list[tuple[int, int, int]]:
    """Colour of the frame (middle of the left edge) of slots 0..k of a sheet row."""
    out = []
    for slot in range(k + 1):
        left, top, right, bottom = cell_box(slot, row)
        out.append(tuple(int(v) for v in im[(top + bottom) // 2, left + BORDER // 2]))
        assert tuple(im[top + 1, right - 2]) == out[-1]  # the frame goes all round
        assert tuple(im[bottom - 2, left + 1]) == out[-1]
    return out


def _has_text(im: np.ndarray, slot: int, row: int, lines: list[str]) -> bool:
    """The label band holds exactly ``lines`` drawn with the sheet's font on white."""
    left, top, right, bottom = label_box(slot, row)
    ref = Image.new("RGB", (right - left, bottom - top), (255, 255, 255))
    draw = ImageDraw.Draw(ref)
    for i, line in enumerate(lines):
        draw.text((1, 1 + i * LINE_H), line, fill=(0, 0, 0), font=label_font())
    return np.array_equal(np.asarray(ref), im[top:bottom, left:right])


def _load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    n_q, n_g = 3, 12
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
    dist = np.sort(rng.uniform(0, 4, (n_q, n_g)), axis=1)
    ap = np.array([0.75, 0.125, np.nan])
    return dict(queries=queries, gallery=gallery, colours=colours, q_pids=q_pids,
                q_cams=q_cams, g_pids=g_pids, g_cams=g_cams, ranking=ranking, dist=dist, ap=ap)


def test_frames_labels_and_sizes_follow_the_ranking(tmp_path: Path, toy) -> None:
    t, k = toy, 8
    files = visualize_ranked_results(
        t["queries"], t["gallery"], t["ranking"], t["q_pids"], t["g_pids"], t["q_cams"],
        t["g_cams"], tmp_path, topk=k, queries=[2, 0], query_names=["a.jpg", "b.jpg", "c.jpg"],
        distances=t["dist"], ap=t["ap"])
    assert [f.name for f in files] == ["00002_c.png", "00000_a.png", f"{SHEET_NAME}.png"]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temporary file
    sheet = _load(files[2])
    assert sheet.shape[:2][::-1] == sheet_size(2, k)
    seen = set()
    for f, row, qi in ((files[0], 0, 2), (files[1], 0, 0), (files[2], 0, 2), (files[2], 1, 0)):
        im = _load(f)
        if f != files[2]:
            assert im.shape[:2][::-1] == sheet_size(1, k)
        frames = _frames(im, k, row)
        assert frames[0] == COLOURS["query"]
        ranked = t["ranking"][qi, :k]
        kinds = [_expected(t["q_pids"][qi], t["q_cams"][qi], t["g_pids"][j], t["g_cams"][j])
                 for j in ranked]
        assert frames[1:] == [COLOURS[x] for x in kinds]
        seen |= set(kinds)
        for slot, (j, kind) in enumerate(zip(ranked, kinds, strict=True), start=1):
            left, top, _, _ = cell_box(slot, row)
            centre = im[top + CELL[0] // 2, left + CELL[1] // 2].astype(int)
            if kind == "junk":  # greyed
                assert centre[0] == centre[1] == centre[2]
            else:
                assert np.abs(centre - t["colours"][j]).max() <= 2
            words = {"match": "true match", "false": "false match", "junk": "junk"}[kind]
            assert _has_text(im, slot, row, [
                f"#{slot} d={t['dist'][qi, slot - 1]:.3f}",
                f"id {t['g_pids'][j]} c{t['g_cams'][j]}", words])
        ap = "no true match" if np.isnan(t["ap"][qi]) else f"AP {100 * t['ap'][qi]:.1f}%"
        assert _has_text(im, 0, row, [f"query {qi}",
                                      f"id {t['q_pids'][qi]} c{t['q_cams'][qi]}", ap])
        # a wrong label is not found: the check can fail
        assert not _has_text(im, 0, row, [f"query {qi + 1}",
                                          f"id {t['q_pids'][qi]} c{t['q_cams'][qi]}", ap])
        legend = im[: LEGEND_H]
        assert len(np.unique(legend.reshape(-1, 3), axis=0)) > 4  # swatches and words
    assert seen == {"match", "false", "junk"}  # the case exercises every colour


def test_a_label_band_holds_three_lines(toy, tmp_path: Path) -> None:
    t = toy
    (f,) = visualize_ranked_results(
        t["queries"], t["gallery"], t["ranking"], t["q_pids"], t["g_pids"], t["q_cams"],
        t["g_cams"], tmp_path, topk=1, queries=[1])
    im = _load(f)
    left, top, right, bottom = label_box(1)
    band = im[top:bottom, left:right]
    rows_with_ink = np.flatnonzero((band < 128).any(axis=(1, 2)))
    assert bottom - top == TEXT_LINES * LINE_H
    assert {int(r) // LINE_H for r in rows_with_ink} == {0, 1, 2}
    # no distance given: the rank alone
    j = t["ranking"][1, 0]
    kind = _expected(t["q_pids"][1], t["q_cams"][1], t["g_pids"][j], t["g_cams"][j])
    words = {"match": "true match", "false": "false match", "junk": "junk"}[kind]
    assert _has_text(im, 1, 0, ["#1", f"id {t['g_pids'][j]} c{t['g_cams'][j]}", words])


def test_select_queries() -> None:
    names = ["x.jpg", "y.jpg", "z.jpg", "w.jpg"]
    assert select_queries(None, names, default=2) == [0, 1]
    assert select_queries("5", names) == [0, 1, 2, 3]
    assert select_queries("2,0", names) == [2, 0]
    assert select_queries("y.jpg,0", names) == [1, 0]
    ap = [0.5, np.nan, 0.1, 0.5]
    # worst: lowest AP first, ties in file order, no AP (no true match) left out
    assert select_queries("3", names, order="worst", ap=ap) == [2, 0, 3]
    assert select_queries(2, names, order="worst", ap=ap,
                          has_match=[True, False, True, True]) == [2, 0]
    r = select_queries("2", names, order="random", seed=4)
    assert r == sorted(r) and len(set(r)) == 2 and r == select_queries("2", names,
                                                                         order="random", seed=4)
    assert {tuple(select_queries("2", names, order="random", seed=s)) for s in range(20)} != {
        tuple(r)}
    with pytest.raises(ValueError, match="out of range"):
        select_queries("0,7", names)
    with pytest.raises(ValueError, match="neither"):
        select_queries("w.jpg,1,v.jpg", names)
    with pytest.raises(ValueError, match="order"):
        select_queries("2", names, order="best")


def test_validate_visrank_worst_queries_frames_distances(tmp_path: Path) -> None:
    root = build_mini_market(tmp_path / "mini")
    data = load_market1501(root, parts=("query", "gallery"))
    q, g = data.query, data.gallery
    rng = np.random.default_rng(5)
    qf = rng.standard_normal((len(q.pids), 8)).astype(np.float32)
    gf = rng.standard_normal((len(g.pids), 8)).astype(np.float32)
    np.save(tmp_path / "q.npy", qf)
    np.save(tmp_path / "g.npy", gf)
    out, js = tmp_path / "ranked", tmp_path / "r.json"
    k = 5
    assert validate_main(["--root", str(root), "--features", str(tmp_path / "q.npy"),
                          str(tmp_path / "g.npy"), "--visrank", str(k), "--visrank-queries",
                          "3", "--visrank-order", "worst", "--visrank-dir", str(out),
                          "--json", str(js), "-q"]) == 0
    files = [Path(f) for f in json.loads(js.read_text())["visrank"]]
    dist = metrics.sqdist(qf, gf).numpy()
    ref = metrics.evaluate_market(dist, q.pids, g.pids, q.camids, g.camids, None,
                                  keep_ranking=True)
    worst = [int(i) for i in np.argsort(ref.ap, kind="stable")[:3]]  # every query has a match
    assert [int(f.name[:5]) for f in files[:3]] == worst and files[3].name == "ranked_lists.png"
    sheet = _load(files[3])
    assert sheet.shape[:2][::-1] == sheet_size(3, k)
    for row, qi in enumerate(worst):
        kinds = [_expected(q.pids[qi], q.camids[qi], g.pids[j], g.camids[j])
                 for j in ref.ranking[qi, :k]]
        assert _frames(sheet, k, row)[1:] == [COLOURS[x] for x in kinds]
        assert _frames(_load(files[row]), k)[1:] == [COLOURS[x] for x in kinds]
        # the distances of the ranked entries, as one query against its top k
        d = metrics.sqdist(qf[qi:qi + 1], gf[ref.ranking[qi, :k]]).numpy()[0]
        np.testing.assert_allclose(d, dist[qi, ref.ranking[qi, :k]], rtol=1e-5, atol=1e-6)
        for slot, j in enumerate(ref.ranking[qi, :k], start=1):
            assert _has_text(sheet, slot, row, [
                f"#{slot} d={d[slot - 1]:.3f}", f"id {g.pids[j]} c{g.camids[j]}",
                {"match": "true match", "false": "false match", "junk": "junk"}[kinds[slot - 1]]])
        assert _has_text(sheet, 0, row, [f"query {qi}", f"id {q.pids[qi]} c{q.camids[qi]}",
                                         f"AP {100 * ref.ap[qi]:.1f}%"])
