"""validate --dataset oxford5k: MAC of full-size images and query crops, compute_ap scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import porting
from porting.converters.caffe import main as convert_caffe
from porting.preprocess import Preprocess
from porting.validation.cli import main as validate_main

from conftest import FIXTURES

LANDMARKS = {"all_souls": ["a0", "a1", "a2"], "bodleian": ["b0", "b1"]}
OTHERS = ["x0", "x1", "x2"]


@pytest.fixture(scope="module")
def oxford(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("oxford")
    gt, img = root / "gt_files_170407", root / "oxbuild_images"
    gt.mkdir()
    img.mkdir()
    rng = np.random.default_rng(0)
    for names in [*LANDMARKS.values(), OTHERS]:
        for n in names:
            h, w = rng.integers(90, 140, size=2)
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(img / f"{n}.jpg")
    for lm, names in LANDMARKS.items():
        (gt / f"{lm}_1_query.txt").write_text(f"oxc1_{names[0]} 5.0 6.0 80.4 85.6\n")
        (gt / f"{lm}_1_good.txt").write_text("\n".join(names[:2]) + "\n")
        (gt / f"{lm}_1_ok.txt").write_text("\n".join(names[2:]) + "\n")
        (gt / f"{lm}_1_junk.txt").write_text("")
    return root


def test_checkpoint_mac(oxford: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "caffenet.pth"
    assert convert_caffe([str(FIXTURES / "caffe/caffenet_narrow/deploy.prototxt"),
                          str(FIXTURES / "caffe/caffenet_narrow/weights.caffemodel"),
                          "-o", str(ckpt), "-q"]) == 0
    js = tmp_path / "r.json"
    assert validate_main(["--dataset", "oxford5k", "--root", str(oxford), "--checkpoint",
                          str(ckpt), "--json", str(js), "-q", "--workers", "0"]) == 0
    r = json.loads(js.read_text())
    assert r["queries"] == ["all_souls_1", "bodleian_1"] and len(r["ap"]) == 2
    assert r["mAP"] == pytest.approx(100 * np.mean([float(s) for s in r["printed"]]))
    assert {p["key"] for p in r["published"]} == {"paper/t7/caffenet/I+V/mAP"}
    # MAC by hand for one database image: conv5 map of the full-size image, max, L2.
    model = porting.load(ckpt)
    spec = dict(model.preprocess_spec, resize=None, resize_method="none", crop="none")
    x = Preprocess.from_dict(spec)(oxford / "oxbuild_images" / "a0.jpg")[None]
    with torch.no_grad():
        fmap = model(data=x, outputs=["conv5"])["conv5"]
    mac = fmap.amax(dim=(2, 3))
    mac = mac / mac.norm()
    from porting.validation.extract import extract_features

    feats = extract_features(model, [oxford / "oxbuild_images" / "a0.jpg"],
                             Preprocess.from_dict(spec), "mac", feature_var="conv5",
                             batch_size=1, num_workers=0, progress=False)
    assert torch.allclose(feats, mac, atol=1e-6)


def test_feature_files_with_known_answer(oxford: Path, tmp_path: Path) -> None:
    names = sorted([n for v in LANDMARKS.values() for n in v] + OTHERS)
    # Database feature = one-hot of its landmark (others: their own axis); queries: their
    # landmark's axis, so every positive ranks before every negative: AP = 1 for both.
    axes = {n: i for i, n in enumerate(names)}
    db = np.zeros((len(names), len(names)), np.float32)
    for lm_i, (_, members) in enumerate(LANDMARKS.items()):
        for n in members:
            db[axes[n], lm_i] = 1.0
    for n in OTHERS:
        db[axes[n], axes[n]] = 1.0
    q = np.eye(2, len(names), dtype=np.float32)
    np.save(tmp_path / "q.npy", q)
    np.save(tmp_path / "db.npy", db)
    js = tmp_path / "r.json"
    assert validate_main(["--dataset", "oxford5k", "--root", str(oxford), "--features",
                          str(tmp_path / "q.npy"), str(tmp_path / "db.npy"),
                          "--json", str(js)]) == 0
    r = json.loads(js.read_text())
    assert r["ap"] == [1.0, 1.0] and r["mAP"] == pytest.approx(100.0)
