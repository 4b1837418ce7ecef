"""Feature extraction: the authors' descriptor, batching, workers, flip-before-mean, cache,
output files, the three model kinds, and torchrun sharding (2 CPU processes).

Run as a script (``python -m torch.distributed.run ... tests/test_extract.py ARGS``) this file
is the worker of the distributed test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from matv73 import save_v73
from PIL import Image

from porting.converters.matfile import MatCell
from porting.graph import GraphModule
from porting.models import ResNet50, SiameseReID
from porting.preprocess import Preprocess, cuhk03_matconvnet, market_matconvnet
from porting.recipes import get_recipe, l2_normalize, pool_positions
from porting.validation.datasets import DatasetError, load_cuhk03, load_market1501
from porting.validation.extract import (
    PreprocessedImages,
    extract_features,
    feature_map,
    flip_commutes,
    inputs_digest,
    save_features,
    shard_bounds,
)
from porting.validation.mini import build_mini_market


def tiny_model(seed: int = 0) -> SiameseReID:
    """ResNet-50 of width 4 (128-d pool5), MatConvNet semantics, non-trivial BN statistics."""
    g = torch.Generator().manual_seed(seed)
    model = SiameseReID(ResNet50("matconvnet", num_classes=None, width=4), feat_dim=128,
                        num_ids=10)
    with torch.no_grad():
        for name, t in model.trunk.state_dict().items():
            noise = torch.randn(t.shape, generator=g)
            if name.endswith(".mult"):
                t.copy_(1 + 0.2 * noise)
            elif name.endswith(".bias") and ".bn" in f".{name}":
                t.copy_(0.1 * noise)
            elif name.endswith(".moments"):  # [mean, sigma]
                t.copy_(torch.stack([0.1 * noise[:, 0], 1 + 0.2 * noise[:, 1].abs()], 1))
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The tiny model gains nothing from intra-op threads, and a shared 2-core machine makes
    OpenMP's spinning threads very slow; restore the setting for the other modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = build_mini_market(tmp_path_factory.mktemp("mini"), n_generated=26)
    return load_market1501(root)


@pytest.fixture(scope="module")
def paths(mini):
    return list(mini.query.paths) + list(mini.gallery.paths[:9])  # 18 images


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def reference(model, paths):
    """extract_features in one batch, in this process."""
    return extract_features(model, paths, market_matconvnet(), "market-matconvnet",
                            batch_size=len(paths), num_workers=0, device="cpu", progress=False)


def test_features_are_unit_norm_and_equal_model_embed(model, paths, reference) -> None:
    pp = market_matconvnet()
    x = torch.stack([pp(p) for p in paths])
    assert reference.dtype == torch.float32 and reference.shape == (len(paths), 128)
    assert torch.allclose(reference.norm(dim=1), torch.ones(len(paths)), atol=1e-6)
    # per-channel mean: flipping before or after the mean is the same, so embed() applies
    assert torch.equal(reference, model.embed(x, "market-matconvnet"))
    d = torch.cdist(reference, reference)
    assert d[~torch.eye(len(paths), dtype=torch.bool)].min() > 1e-3  # not a degenerate model


def test_batching_and_workers_do_not_change_results(model, paths, reference) -> None:
    pp, rec = market_matconvnet(), get_recipe("market-matconvnet")
    small = extract_features(model, paths, pp, rec, batch_size=5, num_workers=0,
                             device="cpu", progress=False)
    workers = extract_features(model, paths, pp, rec, batch_size=5, num_workers=2,
                               device="cpu", progress=False)
    assert torch.equal(small, workers)  # same batches, preprocessed in other processes
    torch.testing.assert_close(small, reference, rtol=0, atol=1e-6)
    split = extract_features(model, load_market1501(paths[0].parents[1]).query, pp, rec,
                             device="cpu", progress=False)
    torch.testing.assert_close(split, reference[: len(split)], rtol=0, atol=1e-6)


def test_flip_is_applied_to_the_image_before_the_mean(model, paths) -> None:
    # a full mean image whose left and right halves differ: flip-then-subtract and
    # subtract-then-flip now give different inputs
    ramp = np.linspace(60.0, 160.0, 256)
    mean = np.stack([np.tile(ramp, (256, 1)), np.tile(ramp[::-1], (256, 1)) * 0.5,
                     np.full((256, 256), 99.0)], axis=2)
    pp = Preprocess(input_size=(256, 256), resize=(256, 256), resize_method="matlab-bicubic",
                    crop="none", mean=mean, mean_resize="none", flip=True)
    assert not flip_commutes(pp) and flip_commutes(market_matconvnet())
    rec = get_recipe("market-matconvnet")
    sub = paths[:6]
    got = extract_features(model, sub, pp, rec, batch_size=6, num_workers=0, device="cpu",
                           progress=False)
    with torch.no_grad():
        x = torch.stack([pp(p) for p in sub])
        xf = torch.stack([pp(p, flip=True) for p in sub])  # fliplr(oim) - mean
        want = l2_normalize(pool_positions(model.features(x), rec)
                            + pool_positions(model.features(xf), rec))
    assert torch.equal(got, want)
    wrong = model.embed(x, "market-matconvnet")  # flips the mean-subtracted input
    assert (got - wrong).abs().max() > 1e-3
    # the fast path (flip the tensor) is bit-identical where it is used
    data = PreprocessedImages(sub, market_matconvnet(), flip=True)
    x0, xf0 = data[0]
    assert torch.equal(xf0, market_matconvnet()(sub[0], flip=True))
    assert torch.equal(x0, market_matconvnet()(sub[0]))


def test_cache_hit_returns_identical_features_without_running_the_model(
        tmp_path, model, paths, reference) -> None:
    pp = market_matconvnet()
    first = extract_features(model, paths, pp, "market-matconvnet", batch_size=len(paths),
                             num_workers=0, device="cpu", progress=False, cache_dir=tmp_path)
    assert torch.equal(first, reference)
    entries = sorted(p.suffix for p in tmp_path.iterdir())
    assert entries == [".json", ".npy"]
    meta = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert meta["recipe"]["name"] == "market-matconvnet" and meta["shape"] == [18, 128]

    class Exploding(SiameseReID):
        def features(self, x):
            raise AssertionError("the model ran on a cache hit")

    boom = Exploding(ResNet50("matconvnet", num_classes=None, width=4), 128, 10)
    boom.load_state_dict(model.state_dict())
    # same weights, so the same default digest (class name aside): pass the checkpoint digest
    kw = dict(num_workers=0, device="cpu", progress=False, cache_dir=tmp_path,
              checkpoint_sha256="f" * 64)
    extract_features(model, paths, pp, "market-matconvnet", **kw)
    again = extract_features(boom, paths, pp, "market-matconvnet", **kw)
    assert torch.equal(again, reference)
    # any change of recipe, preprocessing or file list is a miss
    with pytest.raises(AssertionError, match="cache hit"):
        extract_features(boom, paths, pp, "pool5-l2", **kw)
    with pytest.raises(AssertionError, match="cache hit"):
        extract_features(boom, paths[:-1], pp, "market-matconvnet", **kw)
    before = inputs_digest(paths)
    st = os.stat(paths[0])
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert inputs_digest(paths) != before
    with pytest.raises(AssertionError, match="cache hit"):
        extract_features(boom, paths, pp, "market-matconvnet", **kw)
    # the default digest covers the weights
    other = tiny_model(seed=1)
    kw.pop("checkpoint_sha256")
    assert not torch.equal(
        extract_features(other, paths[:3], pp, "market-matconvnet", **kw),
        extract_features(model, paths[:3], pp, "market-matconvnet", **kw))


def test_features_out_npy_and_mat(tmp_path, model, paths, reference) -> None:
    out = tmp_path / "out" / "gallery"
    extract_features(model, paths, market_matconvnet(), "market-matconvnet",
                     batch_size=len(paths), num_workers=0, device="cpu", progress=False,
                     features_out=out)
    npy = np.load(out.with_suffix(".npy"))
    mat = scipy.io.loadmat(out.with_suffix(".mat"))
    assert npy.dtype == np.float32 and np.array_equal(npy, reference.numpy())
    assert mat["ff"].dtype == np.float32 and np.array_equal(mat["ff"], reference.numpy())
    assert [str(n[0]) for n in mat["names"].ravel()] == [p.name for p in paths]
    assert json.loads(str(mat["meta"][0]))["recipe"] == "market-matconvnet"
    # the v7.3 path (used when ff is too large for MAT v5): HDF5, MATLAB's transposed layout
    import h5py

    _, v73 = save_features(tmp_path / "big.mat", reference, mat_format="v7.3")
    with h5py.File(v73, "r") as f:
        assert np.array_equal(f["ff"][()].T, reference.numpy())
        assert f["ff"].attrs["MATLAB_class"] == b"single"
    assert v73.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    from porting.converters.matfile import load_mat, mat_version

    assert mat_version(v73) == "7.3"
    assert np.array_equal(load_mat(v73)["ff"], reference.numpy())


def test_progress_bar_and_errors(capfd, model, paths, tmp_path) -> None:
    extract_features(model, paths[:4], market_matconvnet(), "market-matconvnet", batch_size=2,
                     num_workers=0, device="cpu", progress=True, desc="query")
    err = capfd.readouterr().err
    assert "query: 4/4 img in " in err and "img/s" in err  # porting.progress's summary line
    bad = tmp_path / "0001_c1s1_000001_00.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DatasetError, match=r"cannot read image .*0001_c1s1_000001_00\.jpg"):
        extract_features(model, [paths[0], bad], market_matconvnet(), "market-matconvnet",
                         num_workers=0, device="cpu", progress=False)
    with pytest.raises(DatasetError, match="cannot read image"):
        extract_features(model, [tmp_path / "missing.jpg"], market_matconvnet(),
                         "market-matconvnet", num_workers=0, device="cpu", progress=False,
                         cache_dir=tmp_path)


def test_arrays_amp_and_plain_backbone(model, paths) -> None:
    pp = market_matconvnet()
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths[:4]]
    from_paths = extract_features(model, paths[:4], pp, "market-matconvnet", num_workers=0,
                                  device="cpu", progress=False)
    from_arrays = extract_features(model, arrays, pp, "market-matconvnet", num_workers=0,
                                   device="cpu", progress=False)
    assert torch.equal(from_paths, from_arrays)
    amp = extract_features(model, paths[:4], pp, "market-matconvnet", num_workers=0,
                           device="cpu", progress=False, amp=True)
    assert amp.dtype == torch.float32
    torch.testing.assert_close(amp.norm(dim=1), torch.ones(4), rtol=0, atol=1e-5)
    assert (amp - from_paths).abs().max() < 0.1  # bf16: close, not exact
    trunk = model.trunk  # a canonical backbone with num_classes=None: forward is the feature
    plain = extract_features(trunk, paths[:4], pp, "market-matconvnet", num_workers=0,
                             device="cpu", progress=False)
    assert torch.equal(plain, from_paths)


def test_cuhk03_images_from_v73_in_worker_processes(tmp_path, model) -> None:
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, size=(20 + j, 9 + j % 3, 3), dtype=np.uint8)
            for j in range(10)]
    cells = MatCell((1, 10), imgs[:4] + [np.zeros((0, 0))] + imgs[5:])
    save_v73(tmp_path / "cuhk-03.mat", {
        "detected": MatCell((5, 1), [cells] * 5),
        "testsets": MatCell((6, 1), [np.array([[2.0, 1.0]])] * 6),
    })
    split = load_cuhk03(tmp_path / "cuhk-03.mat")
    assert len(split.camera_a) == 4 and len(split.camera_b) == 5
    pp = cuhk03_matconvnet()
    kw = dict(batch_size=2, device="cpu", progress=False)
    in_workers = extract_features(model, split.camera_b, pp, "cuhk03-matconvnet",
                                  num_workers=2, **kw)
    arrays = extract_features(model, imgs[5:], pp, "cuhk03-matconvnet", num_workers=0, **kw)
    assert torch.equal(in_workers, arrays) and in_workers.shape == (5, 128)
    with torch.no_grad():  # 224 input: pool5 is 1x1, raw pool5 then L2
        want = l2_normalize(model.features(torch.stack([pp(i) for i in imgs[5:]])).flatten(1))
    torch.testing.assert_close(arrays, want, rtol=0, atol=1e-6)


def _conv_graph(meta: dict | None) -> GraphModule:
    layers = [{"name": "conv1", "type": "dagnn.Conv", "op": "conv", "inputs": ["data"],
               "outputs": ["conv1"], "attrs": {"stride": [4, 4]},
               "params": {"weight": "w", "bias": "b"}},
              {"name": "relu1", "type": "dagnn.ReLU", "op": "relu", "inputs": ["conv1"],
               "outputs": ["pool5"], "attrs": {}, "params": {}}]
    graph = {"framework": "matconvnet", "inputs": ["data"], "outputs": ["pool5"],
             "layers": layers}
    g = GraphModule(graph, {"w": torch.randn(6, 3, 4, 4), "b": torch.randn(6)})
    g.checkpoint_meta = meta
    return g.eval()


def test_feature_map_handles_the_three_model_kinds(model) -> None:
    x = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        assert torch.equal(feature_map(model, x), model.features(x))
        assert torch.equal(feature_map(model.trunk, x), model.trunk(x))
        g = _conv_graph({"feature_var": "conv1"})
        assert torch.equal(feature_map(g, x), g(x, outputs=["conv1"])["conv1"])
        assert torch.equal(feature_map(g, x, feature_var="pool5"), g(x))
    with pytest.raises(ValueError, match="feature_var"):
        feature_map(_conv_graph({}), x)
    with pytest.raises(ValueError, match="num_classes=None"):
        feature_map(ResNet50("matconvnet", num_classes=5, width=4), x)


def test_shard_bounds_are_contiguous_and_cover_everything() -> None:
    for n in range(0, 12):
        for world in (1, 2, 3, 5):
            bounds = [shard_bounds(n, world, r) for r in range(world)]
            covered = [i for a, b in bounds for i in range(a, b)]
            assert covered == list(range(n))


# --------------------------------------------------------------------------------------------
# torchrun, 2 CPU processes
# --------------------------------------------------------------------------------------------


def test_torchrun_two_processes_equal_single_process(tmp_path, model, paths) -> None:
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    lists = {"seven": [str(p) for p in paths[:7]], "one": [str(paths[0])]}
    (tmp_path / "lists.json").write_text(json.dumps(lists))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", str(Path(__file__).resolve()), str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for name, items in lists.items():
        single = extract_features(model, items, market_matconvnet(), "market-matconvnet",
                                  batch_size=3, num_workers=0, device="cpu", progress=False)
        ranks = [torch.load(tmp_path / f"{name}_rank{r}.pt") for r in (0, 1)]
        assert torch.equal(ranks[0], ranks[1])  # identical on every rank
        assert ranks[0].shape == single.shape
        torch.testing.assert_close(ranks[0], single, rtol=0, atol=1e-6)
    info = json.loads((tmp_path / "info_rank1.json").read_text())
    assert info == {"rank": 1, "world": 2, "backend": "gloo"}
    assert np.array_equal(np.load(tmp_path / "seven_out.npy"),
                          torch.load(tmp_path / "seven_rank0.pt").numpy())  # rank 0 wrote it


def _distributed_worker(out: Path) -> None:
    import torch.distributed as dist

    model = tiny_model()
    model.load_state_dict(torch.load(out / "weights.pt"))
    lists = json.loads((out / "lists.json").read_text())
    for name, items in lists.items():
        feats = extract_features(model, items, market_matconvnet(), "market-matconvnet",
                                 batch_size=3, num_workers=0, device="cpu", progress=False,
                                 features_out=out / f"{name}_out" if name == "seven" else None)
        torch.save(feats, out / f"{name}_rank{dist.get_rank()}.pt")
    info = {"rank": dist.get_rank(), "world": dist.get_world_size(),
            "backend": str(dist.get_backend())}
    (out / f"info_rank{dist.get_rank()}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    _distributed_worker(Path(sys.argv[1]))


def test_fast_and_exact_arithmetic_never_share_a_cache_entry(tmp_path, model, paths) -> None:
    from porting.inference import set_exact

    pp = market_matconvnet()
    kw = dict(num_workers=0, device="cpu", progress=False, cache_dir=tmp_path,
              checkpoint_sha256="e" * 64)
    set_exact(model, True)
    extract_features(model, paths[:4], pp, "market-matconvnet", **kw)
    set_exact(model, False)
    try:
        extract_features(model, paths[:4], pp, "market-matconvnet", **kw)
    finally:
        set_exact(model, True)
    metas = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert sorted(m["exact"] for m in metas) == [False, True]
