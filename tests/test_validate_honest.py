"""validate compares published figures only on the published test sets, with the recipe and
protocol that produced them: a generated set with Market-1501's published counts (empty image
files, synthetic features via --features) against the mini set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from porting.validation import metrics
from porting.validation.camera_pairs import offdiag_mean
from porting.validation.cli import main as validate_main
from porting.validation.datasets import load_market1501
from porting.validation.dxy_protocol import caffe_oversample, evaluate_dxy
from porting.validation.published import PUBLISHED, split_mismatch

N_IDS, N_QUERY, N_GALLERY, N_DISTRACTORS, N_JUNK = 750, 3368, 19732, 2793, 3819


@pytest.fixture(scope="module")
def market_counts(tmp_path_factory) -> Path:
    """Market-1501's published counts as file names: 750 identities, 3,368 queries (4 or 5
    cameras each), 19,732 gallery images (every identity in all 6 cameras, more images of
    some, 2,793 ``0000`` distractors, 3,819 ``-1`` junk). The files are empty: with
    --features validate reads only their names."""
    root = tmp_path_factory.mktemp("market_counts") / "Market-1501-v15.09.15"
    q, g = root / "query", root / "bounding_box_test"
    q.mkdir(parents=True)
    g.mkdir()
    frame = iter(range(1, 10**6))

    def touch(folder: Path, pid: int, cam: int) -> None:
        p = "-1" if pid < 0 else f"{pid:04d}"
        (folder / f"{p}_c{cam}s1_{next(frame):06d}_00.jpg").touch()

    for i in range(1, N_IDS + 1):
        for k in range(5 if i <= N_QUERY - 4 * N_IDS else 4):
            touch(q, i, (i + k) % 6 + 1)
        for cam in range(1, 7):
            touch(g, i, cam)
    extra = N_GALLERY - 6 * N_IDS - N_DISTRACTORS - N_JUNK
    for j in range(extra):
        touch(g, j % N_IDS + 1, j % 6 + 1)
    for j in range(N_DISTRACTORS):
        touch(g, 0, j % 6 + 1)
    for j in range(N_JUNK):
        touch(g, -1, j % 6 + 1)
    return root


@pytest.fixture(scope="module")
def features(market_counts: Path, tmp_path_factory) -> tuple[Path, Path]:
    """Identity centroid + noise: a meaningful, imperfect ranking."""
    data = load_market1501(market_counts, parts=("query", "gallery"), check_images="none")
    rng = np.random.default_rng(0)
    centroids = rng.standard_normal((N_IDS + 1, 16)).astype(np.float32)

    def feats(pids: np.ndarray) -> np.ndarray:
        f = centroids[np.clip(pids, 0, None)] + 0.9 * rng.standard_normal((len(pids), 16))
        f[pids <= 0] = rng.standard_normal((int((pids <= 0).sum()), 16))
        return (f / np.linalg.norm(f, axis=1, keepdims=True)).astype(np.float32)

    out = tmp_path_factory.mktemp("features")
    np.save(out / "q.npy", feats(data.query.pids))
    np.save(out / "g.npy", feats(data.gallery.pids))
    return out / "q.npy", out / "g.npy"


def _run(root: Path, feats: tuple[Path, Path], tmp_path: Path, *extra: str
         ) -> tuple[int, dict]:
    js = tmp_path / f"r{len(list(tmp_path.glob('r*.json')))}.json"
    rc = validate_main(["--root", str(root), "--features", str(feats[0]), str(feats[1]),
                        "--json", str(js), *extra])
    return rc, json.loads(js.read_text())


def test_the_generated_set_has_the_published_counts(market_counts: Path) -> None:
    data = load_market1501(market_counts, parts=("query", "gallery"), check_images="none")
    q, g = data.query, data.gallery
    assert (len(q.pids), len(g.pids)) == (N_QUERY, N_GALLERY)
    assert len(set(q.pids.tolist())) == len({p for p in g.pids.tolist() if p > 0}) == N_IDS
    assert ((g.pids == 0).sum(), (g.pids == -1).sum()) == (N_DISTRACTORS, N_JUNK)


def test_comparison_runs_on_the_published_counts(market_counts, features, tmp_path,
                                                 capsys) -> None:
    rc, r = _run(market_counts, features, tmp_path, "--arch", "resnet50", "--recipe",
                 "market-matconvnet-v1", "--camera-pairs", "--check", "--tolerance", "100")
    out = capsys.readouterr().out
    assert "published test set: yes" in out
    assert r["published_test_set"] == {"is": True, "reason": None}
    rows = {(p["key"], p["protocol"]): p for p in r["published"]}
    # the paper's single-query and camera-pair figures are compared, with our own numbers
    data = load_market1501(market_counts, parts=("query", "gallery"), check_images="none")
    q, g = data.query, data.gallery
    qf, gf = np.load(features[0]), np.load(features[1])
    ref = metrics.evaluate_market_features(qf, gf, q.pids, g.pids, q.camids, g.camids, 2000)
    cms = r["camera_pairs"]  # the matrices evaluate_camera_pairs gives (tests/test_metrics.py)
    expect = {("paper/t2/resnet50/I+V/mAP", "single-query"): 100 * ref.mAP,
              ("paper/t2/resnet50/I+V/rank1", "single-query"): 100 * ref.rank(1),
              ("paper/fig6/cross-camera/mAP", "camera pairs"):
                  100 * offdiag_mean(np.array(cms["ap_cm"])),
              ("paper/fig6/cross-camera/rank1", "camera pairs"):
                  100 * offdiag_mean(np.array(cms["r1_cm"]))}
    for key, ours in expect.items():
        row = rows[key]
        assert row["status"] == "compared" and row["ours"] == pytest.approx(ours, abs=1e-9)
        assert row["delta"] == pytest.approx(ours - row["published"], abs=1e-9)
        assert row["within"] is True  # tolerance 100
    assert rc == 0
    # the README figures come from the other test script: n/a, naming both recipes
    readme = rows[("readme/sq/mAP", "single-query")]
    assert readme["status"] == ("n/a: made with recipe market-matconvnet, this run used "
                                "market-matconvnet-v1") and readme["ours"] is None
    assert r["mINP"] == pytest.approx(100 * ref.mINP) and len(r["inp"]) == N_QUERY
    assert r["rank20"] == pytest.approx(100 * ref.rank(20))


def test_check_exit_code_follows_the_compared_rows(market_counts, features, tmp_path) -> None:
    rc, r = _run(market_counts, features, tmp_path, "--arch", "resnet50", "--recipe",
                 "market-matconvnet-v1", "--check", "--tolerance", "0", "--model", "I")
    compared = [p for p in r["published"] if p["status"] == "compared"]
    assert {p["key"] for p in compared} == {"paper/t2/resnet50/I/mAP",
                                            "paper/t2/resnet50/I/rank1",
                                            "paper/t6/19732/I/mAP", "paper/t6/19732/I/rank1"}
    missed = [p for p in compared if p["ours"] < p["published"]]
    assert rc == (1 if missed else 0) == r["check"]["exit"]


def test_contrastive_and_dxy_figures_are_selectable(market_counts, features, tmp_path) -> None:
    _, r = _run(market_counts, features, tmp_path, "--arch", "resnet50", "--recipe",
                "market-matconvnet-v1", "--model", "contrastive")
    assert {p["key"] for p in r["published"]} == {"paper/contrastive/rank1",
                                                  "paper/contrastive/mAP"}
    assert all(p["status"] == "compared" for p in r["published"])
    # D-X-Y's CaffeNet figure is labelled [Euclidean]: evaluation.m with sqdist, no cut
    _, r = _run(market_counts, features, tmp_path, "--arch", "caffenet", "--recipe",
                "caffe-dxy-oversample", "--target", "dxy")
    rows = {p["key"]: p for p in r["published"]}
    assert set(rows) == {"dxy/caffenet/mAP", "dxy/caffenet/rank1"}
    assert rows["dxy/caffenet/mAP"]["protocol"] == "dxy euclidean"
    assert rows["dxy/caffenet/mAP"]["status"] == "compared"
    assert rows["dxy/caffenet/mAP"]["ours"] == r["protocols"]["dxy euclidean"]["mAP"]
    assert "[Euclidean]" in rows["dxy/caffenet/mAP"]["note"]
    assert r["protocols"]["dxy cosine"]["mAP"] != r["protocols"]["single-query"]["mAP"]


def test_mini_set_every_row_na_and_check_exits_2(tmp_path, capsys) -> None:
    from porting.validation.mini import build_mini_market

    root = build_mini_market(tmp_path / "mini")
    data = load_market1501(root, parts=("query", "gallery"), check_images="none")
    rng = np.random.default_rng(1)
    feats = []
    for n, name in ((len(data.query.pids), "q.npy"), (len(data.gallery.pids), "g.npy")):
        np.save(tmp_path / name, rng.standard_normal((n, 8)).astype(np.float32))
        feats.append(tmp_path / name)
    rc, r = _run(root, tuple(feats), tmp_path, "--arch", "resnet50", "--camera-pairs",
                 "--check", "--tolerance", "100")
    assert rc == 2
    n_g = len(data.gallery.pids)
    why = f"n/a: not the published test set ({n_g} gallery images, expected 19,732)"
    assert r["published"] and all(p["status"] == why for p in r["published"])
    assert {p["protocol"] for p in r["published"]} == {"single-query", "camera pairs"}
    assert why in capsys.readouterr().out


def test_split_mismatch_names_each_count() -> None:
    market = {"gallery images": 19_732, "query images": 3_368, "query identities": 750,
              "gallery identities": 750}
    assert split_mismatch("market1501", market) is None
    assert split_mismatch("market1501", {**market, "query identities": 749}) == (
        "not the published test set (749 query identities, expected 750)")
    assert split_mismatch("market1501+500k", {**market, "distractors": 100_000}) is None
    assert "12 distractors" in split_mismatch("market1501+500k", {**market, "distractors": 12})
    duke = {"gallery images": 17_661, "query images": 2_228, "query identities": 702,
            "gallery identities": 1_110}
    assert split_mismatch("dukemtmc", duke) is None
    assert split_mismatch("dukemtmc", market) is not None
    assert split_mismatch("cuhk03", {"identities": 1_467, "test identities": 100,
                                     "splits": 20}) is None
    assert "19 splits" in split_mismatch("cuhk03", {"identities": 1_467,
                                                    "test identities": 100, "splits": 19})
    assert split_mismatch("oxford5k", {"database images": 5_062, "queries": 55}) is None
    assert split_mismatch("oxford5k", {"database images": 8, "queries": 2}) == (
        "not the published test set (8 database images, expected 5,062)")
    # every registered dataset has its published counts
    assert {p.dataset for p in PUBLISHED} <= {"market1501", "market1501+500k", "dukemtmc",
                                              "cuhk03", "oxford5k"}


def _problem(rng: np.random.Generator, nq: int = 12, ng: int = 60, d: int = 6):
    qp, gp = rng.integers(1, 5, nq), rng.integers(-1, 5, ng)
    qc, gc = rng.integers(1, 4, nq), rng.integers(1, 4, ng)
    scale = rng.uniform(0.5, 3.0, (ng, 1)).astype(np.float32)  # raw blobs: norms differ
    return (rng.standard_normal((nq, d)).astype(np.float32),
            scale * rng.standard_normal((ng, d)).astype(np.float32), qp, gp, qc, gc)


def test_dxy_evaluation_is_the_market_protocol_on_cosine_or_raw_sqdist_uncut() -> None:
    qf, gf, qp, gp, qc, gc = _problem(np.random.default_rng(3))
    cos = evaluate_dxy(qf, gf, qp, gp, qc, gc, "cosine", keep_ranking=True)
    qn, gn = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (qf, gf))
    ref = metrics.evaluate_market((1 - qn @ gn.T).astype(np.float32), qp, gp, qc, gc, None)
    np.testing.assert_allclose(cos.ap, ref.ap, atol=1e-6)
    # the ranking is by cosine: unit-normalising the gallery changes nothing, scaling does
    assert np.array_equal(cos.ranking, evaluate_dxy(qf, gn, qp, gp, qc, gc, "cosine",
                                                    keep_ranking=True).ranking)
    euc = evaluate_dxy(qf, gf, qp, gp, qc, gc, "euclidean", keep_ranking=True)
    d = ((qf[:, None, :] - gf[None]) ** 2).sum(-1)
    assert np.array_equal(euc.ranking[:, :5], np.argsort(d, axis=1, kind="stable")[:, :5])
    assert euc.ranking.shape[1] == gf.shape[0]  # whole gallery: no top-2000 cut
    with pytest.raises(ValueError, match="distance"):
        evaluate_dxy(qf, gf, qp, gp, qc, gc, "manhattan")


def test_oversample_saved_crop_is_the_mirrored_centre_crop() -> None:
    """extract_feature.py at batch 1 keeps crop 10 of caffe.io.oversample; the recipe
    caffe-dxy-oversample takes preprocess(image, flip=True) of the centre crop."""
    from porting.imresize import caffe_resize_image
    from porting.preprocess import caffe_dxy, subtract_mean, to_bgr
    from porting.recipes import get_recipe
    from porting.validation.dxy_protocol import SAVED_CROP

    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (128, 64, 3), dtype=np.uint8)
    pre = caffe_dxy(224)
    x = caffe_resize_image(np.multiply(img, 1.0 / 255, dtype=np.float64).astype(np.float32),
                           (256, 256))
    crops = caffe_oversample(x, (224, 224))
    assert crops.shape == (10, 224, 224, 3)
    assert np.array_equal(crops[0], x[:224, :224]) and np.array_equal(crops[3], x[32:, 32:])
    assert np.array_equal(crops[4], x[16:240, 16:240])
    assert np.array_equal(crops[5:], crops[:5, :, ::-1])
    saved = subtract_mean(to_bgr(crops[SAVED_CROP]) * np.float32(255), pre.mean,
                          pre.mean_resize)
    ours = pre(img, flip=True).numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(ours, saved, atol=1e-4)
    rec = get_recipe("caffe-dxy-oversample")
    assert rec.view == "mirror" and not rec.flip and not rec.l2


def test_dxy_checkpoint_extracts_the_mirrored_centre_crop_raw(tmp_path: Path) -> None:
    """--target dxy on a caffe-dxy checkpoint: extract_feature.py without --center_only
    (the saved blob is the mirrored centre crop's, unnormalised)."""
    import torch

    import porting
    from porting.converters.caffe import main as convert_caffe
    from porting.preprocess import Preprocess
    from porting.validation.mini import build_mini_market

    from conftest import FIXTURES

    ckpt = tmp_path / "caffenet.pth"
    assert convert_caffe([str(FIXTURES / "caffe/caffenet_narrow/deploy.prototxt"),
                          str(FIXTURES / "caffe/caffenet_narrow/weights.caffemodel"),
                          "-o", str(ckpt), "-q"]) == 0
    root = build_mini_market(tmp_path / "mini")
    js, prefix = tmp_path / "r.json", tmp_path / "f"
    assert validate_main(["--root", str(root), "--checkpoint", str(ckpt), "--target", "dxy",
                          "--json", str(js), "--features-out", str(prefix), "-q",
                          "--workers", "0"]) == 0
    r = json.loads(js.read_text())
    assert r["recipe"] == "caffe-dxy-oversample"
    assert {"dxy cosine", "dxy euclidean", "single-query"} <= set(r["protocols"])
    assert {p["key"] for p in r["published"]} == {"dxy/caffenet/mAP", "dxy/caffenet/rank1"}
    model = porting.load(ckpt)
    pre = Preprocess.from_dict(model.preprocess_spec)
    first = load_market1501(root, parts=("query",)).query.paths[0]
    with torch.no_grad():
        mirrored, plain = (model(data=pre(first, flip=f)[None], outputs=["fc7"])["fc7"][0]
                           .numpy() for f in (True, False))
    saved = np.load(f"{prefix}_query.npy")[0]
    # the mirrored crop's blob up to float32 rounding (batched vs single forward), far from
    # the unflipped crop's
    assert np.abs(saved - mirrored).max() < 1e-3 * np.abs(saved - plain).max()
    assert not np.isclose(np.linalg.norm(saved), 1.0)  # raw blob, as D-X-Y saves it
