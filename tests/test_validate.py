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
    assert "paper/t2/resnet50/I+V/rank1" in out and "readme/sq/mAP" in out
    r = json.loads(js.read_text())
    data = load_market1501(mini, parts=("query", "gallery"))
    assert r["n_query"] == len(data.query.pids) and len(r["ap"]) == r["n_query"]
    aps = np.array([np.nan if a is None else a for a in r["ap"]])
    assert r["mAP"] == pytest.approx(100 * aps.mean())
    assert r["rank1"] == pytest.approx(100 * r["cmc"][0])
    assert all(a <= b + 1e-12 for a, b in zip(r["cmc"], r["cmc"][1:], strict=False))
    assert r["recipe"] == "market-matconvnet" and r["arch"] == "resnet50"
    assert {p["key"] for p in r["published"]} >= {"paper/t2/resnet50/I+V/mAP"}
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
    qf, gf, _ = _designed_features(mini)
    np.save(tmp_path / "q.npy", qf)
    np.save(tmp_path / "g.npy", gf)
    args = ["--root", str(mini), "--features", str(tmp_path / "q.npy"), str(tmp_path / "g.npy"),
            "--arch", "resnet50", "--check", "--target", "paper"]
    assert validate_main(args + ["--tolerance", "100"]) == 0
    r1 = validate_main(args)  # designed features: perfect rank-1 but not every published mAP
    js = tmp_path / "r.json"
    validate_main(args + ["--json", str(js)])
    missed = [p for p in json.loads(js.read_text())["published"] if not p["within"]]
    assert r1 == (1 if missed else 0)
    # No architecture known: nothing to check against is a failure of --check.
    assert validate_main(["--root", str(mini), "--features", str(tmp_path / "q.npy"),
                          str(tmp_path / "g.npy"), "--check"]) == 1


def test_bad_input(tmp_path: Path, capsys) -> None:
    assert validate_main(["--root", str(tmp_path / "nowhere"), "--features", "a.npy",
                          "b.npy"]) == 2
    assert "nowhere" in capsys.readouterr().err
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    assert validate_main(["--root", str(tmp_path), "--checkpoint", str(junk)]) == 2
    assert "junk.pth" in capsys.readouterr().err
