"""``porting.FeatureExtractor``: images in, the checkpoint's own L2-normalised descriptors out
(its preprocessing, its recipe, the flip applied to the image); torchreid-style arguments;
clear errors for images of the wrong mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import porting
from porting import FeatureExtractor
from porting.checkpoint import CheckpointError
from porting.preprocess import Preprocess
from porting.recipes import get_recipe, l2_normalize, pool_positions

from conftest import FIXTURES

IMAGE = FIXTURES / "preprocess" / "0066_c3s1_008701_03.jpg"  # a 128 x 64 Market crop


@pytest.fixture(scope="module", autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Three different small crops (the fixture, mirrored, and a colour-shifted copy)."""
    out = tmp_path_factory.mktemp("fe_images")
    rgb = np.asarray(Image.open(IMAGE).convert("RGB"))
    arrays = [rgb, rgb[:, ::-1], np.clip(rgb.astype(int) + 40, 0, 255).astype(np.uint8)]
    paths = []
    for i, a in enumerate(arrays):
        paths.append(out / f"img{i}.png")  # lossless: the decoded pixels equal the array
        Image.fromarray(np.ascontiguousarray(a)).save(paths[-1])
    return paths


def _manual(model, pre: Preprocess, recipe: str, path: Path, var: str,
            feed: str) -> torch.Tensor:
    """What the authors' scripts do: preprocess, the blob, per-recipe pooling, flip, L2."""
    rec = get_recipe(recipe)
    with torch.no_grad():
        f = pool_positions(model(**{feed: pre(path)[None]}, outputs=[var])[var], rec)
        if rec.flip:
            xf = pre(path, flip=True)[None]
            f = f + pool_positions(model(**{feed: xf}, outputs=[var])[var], rec)
    return l2_normalize(f)[0]


def test_two_stream_market_descriptor(ckpts, images) -> None:
    fe = FeatureExtractor(ckpts["two_stream"], device="cpu")
    assert fe.recipe.name == "market-matconvnet" and fe.preprocess.input_size == (256, 256)
    feats = fe([str(p) for p in images])
    assert feats.shape == (3, 256) and feats.dtype == torch.float32
    assert feats.device.type == "cpu"
    assert torch.allclose(feats.norm(dim=1), torch.ones(3), atol=1e-6)
    # the converted graph (5 inputs: data, label, data_2, ...) fed only the image stream
    graph = porting.load(ckpts["two_stream"])
    pre = Preprocess.from_dict(graph.preprocess_spec)
    ref = _manual(graph, pre, "market-matconvnet", images[0], "pool5", "data")
    assert torch.allclose(feats[0], ref, atol=1e-6, rtol=0)
    # the canonical SiameseReID and its .embed give the same descriptor
    canonical = porting.load(ckpts["two_stream"], canonical=True)
    emb = canonical.embed(pre(images[2])[None], "market-matconvnet")
    assert (emb - feats[2:]).abs().max() <= 1e-5
    fe_c = FeatureExtractor(canonical, device="cpu")
    assert (fe_c(images[2]) - emb).abs().max() <= 1e-6


def test_paths_pil_and_arrays_agree(ckpts, images) -> None:
    fe = FeatureExtractor(model_path=ckpts["mcn_caffenet"], device="cpu", batch_size=2)
    assert fe.recipe.name == "pool5-l2"  # full mean image, no flip
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in images]
    by_path = fe(images)
    assert by_path.shape == (3, 32)
    assert torch.equal(fe([Image.open(p) for p in images]), by_path)
    assert torch.equal(fe(arrays), by_path)
    assert torch.equal(fe(np.stack(arrays)), by_path)  # an N x H x W x 3 uint8 batch
    # a single image (another batch composition: equal up to the convolution's rounding)
    assert torch.allclose(fe(images[1])[0], by_path[1], atol=1e-6, rtol=0)
    assert torch.allclose(fe(arrays[2]), by_path[2:], atol=1e-6, rtol=0)
    grey = arrays[0].mean(axis=2).astype(np.uint8)
    assert fe(grey).shape == (1, 32)  # HxW grey is replicated to RGB, as PIL mode L would be
    assert torch.allclose(fe(grey), fe(Image.fromarray(grey)))
    graph = porting.load(ckpts["mcn_caffenet"])
    pre = Preprocess.from_dict(graph.preprocess_spec)
    for p, f in zip(images, by_path, strict=True):
        assert torch.allclose(f, _manual(graph, pre, "pool5-l2", p, "pool5", "input"),
                              atol=1e-6, rtol=0)
    assert torch.allclose(by_path.norm(dim=1), torch.ones(3), atol=1e-6)


def test_caffe_fc7_descriptor_and_recipe_override(ckpts, images) -> None:
    fe = FeatureExtractor(ckpts["caffe_caffenet"], device="cpu")
    assert fe.recipe.name == "caffe-dxy" and fe.feature_var == "fc7"
    feats = fe(images)
    graph = porting.load(ckpts["caffe_caffenet"])
    pre = Preprocess.from_dict(graph.preprocess_spec)
    assert pre.colour == "BGR"
    for p, f in zip(images, feats, strict=True):
        assert torch.allclose(f, _manual(graph, pre, "caffe-dxy", p, "fc7", "data"),
                              atol=1e-6, rtol=0)
    # another recipe: market's per-position L2 + flip of fc7 (N x C: no positions) = fc7(x)
    # + fc7(flipped x), L2
    flipped = FeatureExtractor(ckpts["caffe_caffenet"], device="cpu",
                               recipe="market-matconvnet")(images[0])
    ref = _manual(graph, pre, "market-matconvnet", images[0], "fc7", "data")
    assert torch.allclose(flipped[0], ref, atol=1e-6, rtol=0)
    assert not torch.allclose(flipped[0], feats[0], atol=1e-3)


def test_torchreid_style_arguments(ckpts, images) -> None:
    ck = ckpts["mcn_caffenet"]
    fe = FeatureExtractor(model_name="caffenet", model_path=ck, image_size=(227, 227),
                          device="cpu", verbose=False)
    assert fe(images[:1]).shape == (1, 32)
    assert "pool5-l2" in repr(fe) and "(227, 227)" in repr(fe)
    # an already loaded module works too
    model = porting.load(ck)
    assert torch.equal(FeatureExtractor(model, device="cpu")(images[:1]), fe(images[:1]))
    with pytest.raises(ValueError, match=r"image_size \(256, 128\) differs .* \(227, 227\)"):
        FeatureExtractor(model, image_size=(256, 128), device="cpu")
    with pytest.raises(ValueError, match="pixel_mean .* differs from the checkpoint's own"):
        FeatureExtractor(model, pixel_mean=[0.485, 0.456, 0.406], device="cpu")
    with pytest.raises(ValueError, match="pixel_std"):
        FeatureExtractor(model, pixel_std=[0.229, 0.224, 0.225], device="cpu")
    with pytest.raises(ValueError, match="unknown recipe"):
        FeatureExtractor(model, recipe="nope")
    with pytest.raises(ValueError, match="either checkpoint or model_path"):
        FeatureExtractor(ck, model_path=ck)
    with pytest.raises(ValueError, match="needs a checkpoint"):
        FeatureExtractor()
    with pytest.raises(ValueError, match="batch_size"):
        FeatureExtractor(ck, batch_size=0)
    with pytest.raises(ValueError, match="device"):
        FeatureExtractor(ck, device="tpu")


def test_bad_checkpoints(tmp_path: Path) -> None:
    foreign = tmp_path / "osnet.pth.tar"
    torch.save({"conv1.weight": torch.zeros(2, 3, 1, 1)}, foreign)
    with pytest.raises(CheckpointError, match="bare state_dict from another tool"):
        FeatureExtractor(foreign)
    with pytest.raises(CheckpointError, match="no such file"):
        FeatureExtractor(tmp_path / "missing.pth")


@pytest.fixture(scope="module")
def fe_caffenet(ckpts) -> FeatureExtractor:
    return FeatureExtractor(ckpts["mcn_caffenet"], device="cpu")


@pytest.mark.parametrize("bad,needle", [
    (np.zeros((128, 64, 4), np.uint8), r"shape \(128, 64, 4\) \(RGBA\?"),
    (np.zeros((128, 64, 1), np.uint8), r"shape \(128, 64, 1\) \(1 channel"),
    (np.zeros((128, 64, 2), np.uint8), r"shape \(128, 64, 2\)"),
    (np.zeros((128, 64, 3), np.float32), r"float32 array of shape \(128, 64, 3\); expected "
                                         "uint8"),
    (np.zeros((128, 64, 3), np.uint16), r"uint16 array"),
    (Image.new("RGBA", (64, 128)), r"PIL image in mode 'RGBA' \(with alpha\)"),
    (Image.new("LA", (64, 128)), r"mode 'LA'"),
    (Image.new("F", (64, 128)), r"mode 'F' \(more than 8 bits"),
    (Image.new("I;16", (64, 128)), r"mode 'I;16'"),
    (torch.zeros(3, 256, 256), r"torch.Tensor \(3, 256, 256\)"),
    (3.5, r"is a float; expected a path"),
])
def test_wrong_image_modes_are_named(fe_caffenet, bad, needle) -> None:
    fe = fe_caffenet
    with pytest.raises((ValueError, TypeError), match=needle) as info:
        fe([np.zeros((128, 64, 3), np.uint8), bad])
    assert "image #1" in str(info.value)


def test_unreadable_files_are_named(fe_caffenet, tmp_path: Path) -> None:
    fe = fe_caffenet
    with pytest.raises(FileNotFoundError, match="nope.jpg.*no such file"):
        fe([tmp_path / "nope.jpg"])
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="junk.jpg.*cannot read it"):
        fe(str(junk))
    rgba = tmp_path / "alpha.png"
    Image.new("RGBA", (64, 128)).save(rgba)
    with pytest.raises(ValueError, match="alpha.png.*'RGBA'"):
        fe([rgba])
    assert fe([]).shape == (0, 0)
