"""validate end to end on the bundled mini Market-1501 (files -> features -> official metrics
-> report), the authors' feature-file mode, --check and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from matv73 import save_v73

from porting.converters.matconvnet import main as convert_main
from porting.validation.cli import main as validate_main
from porting.validation.datasets import load_market1501
from porting.validation.mini import build_mini_market

from conftest import FIXTURES


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> Path:
    return build_mini_market(tmp_path_factory.mktemp("mini") / "market")


@pytest.fixture(scope="module")
def two_stream(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "two_stream.pth"
    assert convert_main([str(FIXTURES / "matconvnet/resnet52_2stream_narrow/model.mat"),
                         "-o", str(out), "-q"]) == 0
    return out


def test_checkpoint_on_mini_market(mini: Path, two_stream: Path, tmp_path: Path, capsys) -> None:
    js, png = tmp_path / "r.json", tmp_path / "cmc.png"
    rc = validate_main(["--root", str(mini), "--checkpoint", str(two_stream), "--json", str(js),
                        "--plot", str(png), "--multi-query", "--camera-pairs", "-q",
                        "--workers", "0"])
    assert rc == 0
    out = capsys.readouterr().out
    # not a published test set: the figures are one line saying why, each row in the JSON
    assert "published figures, all n/a: not the published test set" in out
    r = json.loads(js.read_text())
    data = load_market1501(mini, parts=("query", "gallery"))
    assert r["n_query"] == len(data.query.pids) and len(r["ap"]) == r["n_query"]
    aps = np.array([np.nan if a is None else a for a in r["ap"]])
    assert r["mAP"] == pytest.approx(100 * aps.mean())
    assert r["rank1"] == pytest.approx(100 * r["cmc"][0])
    assert all(a <= b + 1e-12 for a, b in zip(r["cmc"], r["cmc"][1:], strict=False))
    assert r["recipe"] == "market-matconvnet" and r["arch"] == "resnet50"
    assert {p["key"] for p in r["published"]} >= {"paper/t2/resnet50/I+V/mAP",
                                                  "paper/t2/resnet50/I+V/rank1", "readme/sq/mAP"}
    assert "multi_query_max" in r and len(r["camera_pairs"]["ap_cm"]) == 6
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _designed_features(root: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Query i equals the first good gallery image of its id; everything else is orthogonal
    noise: every query with a good image ranks one first."""
    data = load_market1501(root, parts=("query", "gallery"), check_images="none")
    q, g = data.query, data.gallery
    rng = np.random.default_rng(0)
    d = len(q.pids) + len(g.pids) + 8
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0].astype(np.float32)
    gf = basis[len(q.pids): len(q.pids) + len(g.pids)].copy()
    qf = basis[: len(q.pids)].copy()
    has_good = 0
    for i, (p, c) in enumerate(zip(q.pids, q.camids, strict=True)):
        good = np.flatnonzero((g.pids == p) & (g.camids != c))
        if good.size:
            qf[i] = gf[good[0]]
            has_good += 1
    return qf, gf, 100.0 * has_good / len(q.pids)


def test_authors_feature_files(mini: Path, tmp_path: Path, capsys) -> None:
    qf, gf, expected_r1 = _designed_features(mini)
    scipy.io.savemat(tmp_path / "q.mat", {"ff": qf})
    save_v73(tmp_path / "g.mat", {"ff": gf})  # the authors save features with -v7.3
    js = tmp_path / "r.json"
    rc = validate_main(["--root", str(mini), "--features", str(tmp_path / "q.mat"),
                        str(tmp_path / "g.mat"), "--arch", "resnet50", "--json", str(js)])
    assert rc == 0
    r = json.loads(js.read_text())
    assert r["rank1"] == pytest.approx(expected_r1)
    np.save(tmp_path / "q.npy", qf)
    np.save(tmp_path / "g.npy", gf[:-1])
    assert validate_main(["--root", str(mini), "--features", str(tmp_path / "q.npy"),
                          str(tmp_path / "g.npy")]) == 2
    assert "g.npy" in capsys.readouterr().err


def test_check_exit_codes(mini: Path, tmp_path: Path) -> None:
    """The mini set is not a published test set: every figure is n/a and --check exits 2,
    whatever the tolerance (the met / missed exit codes are tested on a set with the
    published counts, tests/test_validate_honest.py)."""
    qf, gf, _ = _designed_features(mini)
    np.save(tmp_path / "q.npy", qf)
    np.save(tmp_path / "g.npy", gf)
    args = ["--root", str(mini), "--features", str(tmp_path / "q.npy"), str(tmp_path / "g.npy"),
            "--arch", "resnet50", "--check", "--target", "paper"]
    assert validate_main(args + ["--tolerance", "100"]) == 2
    js = tmp_path / "r.json"
    assert validate_main(args + ["--json", str(js)]) == 2
    rows = json.loads(js.read_text())["published"]
    assert rows and all(p["status"].startswith("n/a: not the published test set") and
                        p["within"] is None for p in rows)
    assert validate_main(args[:-5] + ["--json", str(js)]) == 0  # no --check: report only
    # No architecture known: nothing to compare, and still not the published test set.
    assert validate_main(["--root", str(mini), "--features", str(tmp_path / "q.npy"),
                          str(tmp_path / "g.npy"), "--check"]) == 2


def test_bad_input(tmp_path: Path, capsys) -> None:
    assert validate_main(["--root", str(tmp_path / "nowhere"), "--features", "a.npy",
                          "b.npy"]) == 2
    assert "nowhere" in capsys.readouterr().err
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    assert validate_main(["--root", str(tmp_path), "--checkpoint", str(junk)]) == 2
    assert "junk.pth" in capsys.readouterr().err


def test_v1_recipe_is_the_papers_test_code() -> None:
    """market-matconvnet-v1 (test_gallery_res.m, v1.0): imresize(u8,[224 224]) - mean,
    raw pool5, no flip, L2."""
    from porting.imresize import imresize
    from porting.preprocess import market_matconvnet
    from porting.recipes import get_recipe
    from porting.validation.mini import sample_paths
    from porting.validation.run import recipe_preprocess

    pre = recipe_preprocess("market-matconvnet-v1", market_matconvnet())
    img = np.asarray(__import__("PIL.Image").Image.open(sample_paths()[0]).convert("RGB"))
    x = pre(img).numpy().transpose(1, 2, 0)
    ref = imresize(img, (224, 224), "bicubic").astype(np.float32) - np.float32(pre.mean)
    assert x.shape == (224, 224, 3) and np.array_equal(x, ref)
    rec = get_recipe("market-matconvnet-v1")
    assert (rec.flip, rec.position_l2, rec.l2, rec.view) == (False, False, True, "image")
