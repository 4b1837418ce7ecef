"""Tests for the ``Preprocess`` spec, its helpers and the presets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from porting.imresize import caffe_resize_image, imresize
from porting.preprocess import (
    DXY_BGR_MEAN,
    MARKET_RGB_MEAN,
    Preprocess,
    caffe_dxy,
    center_crop,
    center_crop_offsets,
    cuhk03_matconvnet,
    hflip,
    load_rgb,
    market_matconvnet,
    random_crop,
    subtract_mean,
    to_bgr,
)

FIXTURE = Path(__file__).parent / "fixtures" / "preprocess" / "0066_c3s1_008701_03.jpg"


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    with Image.open(FIXTURE) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def coord_image(h: int, w: int) -> np.ndarray:
    """Image whose pixel (r, c) holds (r, c, 0), to read crop offsets back."""
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([r, c, np.zeros_like(r)], axis=-1)


# --------------------------------------------------------------------------- spec


def test_fixture_is_a_market_crop(rgb: np.ndarray) -> None:
    assert rgb.shape == (128, 64, 3) and rgb.dtype == np.uint8


@pytest.mark.parametrize("factory", [market_matconvnet, cuhk03_matconvnet, caffe_dxy,
                                     lambda: caffe_dxy(227)])
def test_dict_round_trip_is_plain_json(factory) -> None:
    spec = factory()
    d = spec.to_dict()
    again = Preprocess.from_dict(json.loads(json.dumps(d)))
    assert again == spec
    assert again.to_dict() == d
    assert hash(again) == hash(spec)


def test_round_trip_with_a_mean_image() -> None:
    mean = np.random.default_rng(0).random((8, 6, 3)) * 255
    spec = cuhk03_matconvnet(mean_image=mean)
    assert isinstance(spec.mean, np.ndarray) and not spec.mean.flags.writeable
    again = Preprocess.from_dict(json.loads(json.dumps(spec.to_dict())))
    np.testing.assert_array_equal(again.mean, mean)
    assert again == spec
    assert spec != cuhk03_matconvnet()


def test_a_1x1x3_mean_becomes_a_triple() -> None:
    spec = cuhk03_matconvnet(mean_image=np.array(MARKET_RGB_MEAN).reshape(1, 1, 3))
    assert spec.mean == MARKET_RGB_MEAN


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("input_size", (224,)),
        ("input_size", (224, 0)),
        ("input_size", (224.5, 224)),
        ("resize", "256"),
        ("resize_method", "bicubic"),
        ("crop", "random"),
        ("mean", (1.0, 2.0)),
        ("mean", np.zeros((4, 4, 2))),
        ("mean", (1.0, float("nan"), 2.0)),
        ("mean_resize", "nearest"),
        ("std", (1.0, 0.0, 1.0)),
        ("colour", "rgb"),
        ("value_range", 0),
        ("value_range", "255"),
        ("flip", "yes"),
        ("source", 3),
    ],
)
def test_bad_field_is_named(field: str, value: object) -> None:
    d = market_matconvnet().to_dict()
    d[field] = value
    with pytest.raises(ValueError, match=f"Preprocess.{field}"):
        Preprocess.from_dict(d)


def test_inconsistent_fields_are_named() -> None:
    base = market_matconvnet().to_dict()
    with pytest.raises(ValueError, match="Preprocess.resize"):
        Preprocess.from_dict({**base, "resize": [300, 300]})  # crop none, size mismatch
    with pytest.raises(ValueError, match="Preprocess.resize"):
        Preprocess.from_dict({**base, "resize": None})
    with pytest.raises(ValueError, match="Preprocess.resize"):
        Preprocess.from_dict({**base, "resize_method": "none"})
    with pytest.raises(ValueError, match="Preprocess.crop"):
        Preprocess.from_dict({**cuhk03_matconvnet().to_dict(), "crop": "center"})
    with pytest.raises(ValueError, match="Preprocess.resize"):
        Preprocess.from_dict({**caffe_dxy().to_dict(), "resize": [200, 200]})
    with pytest.raises(ValueError, match="Preprocess.mean"):
        Preprocess.from_dict({**base, "mean": np.zeros((8, 8, 3)).tolist(),
                              "mean_resize": "none"})


def test_unknown_and_missing_keys() -> None:
    d = market_matconvnet().to_dict()
    with pytest.raises(ValueError, match="unknown field.*'scale'"):
        Preprocess.from_dict({**d, "scale": 1})
    del d["mean"]
    with pytest.raises(ValueError, match="missing.*'mean'"):
        Preprocess.from_dict(d)
    with pytest.raises(ValueError, match="mapping"):
        Preprocess.from_dict([1, 2])  # type: ignore[arg-type]


def test_spec_is_frozen() -> None:
    spec = market_matconvnet()
    with pytest.raises(AttributeError):
        spec.flip = False  # type: ignore[misc]


# --------------------------------------------------------------------------- pipelines


def test_market_matconvnet_pipeline(rgb: np.ndarray) -> None:
    spec = market_matconvnet()
    out = spec(FIXTURE)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (3, 256, 256) and out.dtype == torch.float32
    mean32 = np.asarray(MARKET_RGB_MEAN, dtype=np.float32)
    expected = imresize(rgb, (256, 256)).astype(np.float32) - mean32
    np.testing.assert_array_equal(out.numpy(), expected.transpose(2, 0, 1))
    # The uint8 resize is visible: adding the mean back gives whole grey levels.
    back = out.numpy().transpose(1, 2, 0) + mean32
    np.testing.assert_allclose(back, np.round(back), rtol=0, atol=1e-4)
    assert spec.flip and spec.colour == "RGB" and spec.std is None


def test_input_kinds_agree(rgb: np.ndarray) -> None:
    spec = market_matconvnet()
    from_path = spec(FIXTURE)
    assert torch.equal(spec(str(FIXTURE)), from_path)
    assert torch.equal(spec(rgb), from_path)
    with Image.open(FIXTURE) as im:
        assert torch.equal(spec(im), from_path)
        assert torch.equal(spec(im.convert("L").convert("RGB")), spec(np.asarray(im.convert("L"))))


def test_flip_is_applied_before_the_mean(rgb: np.ndarray) -> None:
    spec = market_matconvnet()
    flipped = spec(rgb, flip=True)
    assert torch.equal(flipped, hflip(spec(rgb)))
    assert not torch.equal(flipped, spec(rgb))
    # With a non-constant mean image the flip must happen before subtraction.
    mean = np.random.default_rng(1).random((256, 256, 3)).astype(np.float32) * 100
    spec_img = Preprocess(input_size=(256, 256), resize=(256, 256),
                          resize_method="matlab-bicubic", crop="none", mean=mean)
    resized = imresize(rgb, (256, 256))[:, ::-1].astype(np.float32)
    np.testing.assert_array_equal(spec_img(rgb, flip=True).numpy(),
                                  (resized - mean).transpose(2, 0, 1))


def test_cuhk03_two_step_resize(rgb: np.ndarray) -> None:
    out = cuhk03_matconvnet()(rgb)
    assert out.shape == (3, 224, 224)
    step1 = imresize(rgb, (256, 256))  # prepare_test.m: single(imresize(u8, [256 256]))
    assert step1.dtype == np.uint8
    step2 = imresize(step1.astype(np.float32), (224, 224))  # test script, no rounding
    assert step2.dtype == np.float32
    expected = step2 - np.asarray(MARKET_RGB_MEAN, dtype=np.float32)
    np.testing.assert_array_equal(out.numpy(), expected.transpose(2, 0, 1))
    # Not the same as one uint8 resize straight to 224, nor as a float resize from 128x64.
    direct = imresize(rgb, (224, 224)).astype(np.float32) - np.float32(MARKET_RGB_MEAN)
    assert not np.array_equal(out.numpy(), direct.transpose(2, 0, 1))


def test_cuhk03_mean_image_is_resized_like_matlab(rgb: np.ndarray) -> None:
    mean = (np.random.default_rng(2).random((16, 8, 3)) * 255).astype(np.float32)
    out = cuhk03_matconvnet(mean_image=mean)(rgb)
    image = imresize(imresize(rgb, (256, 256)).astype(np.float32), (224, 224))
    expected = image - imresize(mean, (224, 224))
    np.testing.assert_allclose(out.numpy(), expected.transpose(2, 0, 1), rtol=0, atol=1e-4)


@pytest.mark.parametrize(("crop", "offset"), [(224, 16), (227, 14)])
def test_caffe_dxy_pipeline(rgb: np.ndarray, crop: int, offset: int) -> None:
    spec = caffe_dxy(crop)
    out = spec(rgb)
    assert out.shape == (3, crop, crop) and out.dtype == torch.float32
    loaded = (rgb.astype(np.float64) * (1.0 / 255)).astype(np.float32)  # caffe.io.load_image
    resized = caffe_resize_image(loaded, (256, 256))
    cropped = resized[offset : offset + crop, offset : offset + crop]
    bgr = cropped[:, :, ::-1] * np.float32(255)
    expected = (bgr.astype(np.float64) - np.asarray(DXY_BGR_MEAN)).astype(np.float32)
    np.testing.assert_array_equal(out.numpy(), expected.transpose(2, 0, 1))
    assert spec.colour == "BGR" and spec.crop == "center" and spec.resize == (256, 256)


def test_bgr_channel_order(rgb: np.ndarray) -> None:
    zero = dict(input_size=(224, 224), resize=(256, 256), resize_method="caffe-bilinear",
                crop="center", mean=(0.0, 0.0, 0.0))
    as_bgr = Preprocess(colour="BGR", **zero)(rgb).numpy()
    as_rgb = Preprocess(colour="RGB", **zero)(rgb).numpy()
    np.testing.assert_array_equal(as_bgr[0], as_rgb[2])
    np.testing.assert_array_equal(as_bgr[2], as_rgb[0])
    np.testing.assert_array_equal(as_bgr[1], as_rgb[1])
    assert not np.array_equal(as_bgr[0], as_bgr[2])


def test_matconvnet_and_caffe_pipelines_differ_but_agree_roughly(rgb: np.ndarray) -> None:
    mcn = market_matconvnet()(rgb).numpy()  # RGB, 256, minus Market mean
    spec = Preprocess(input_size=(256, 256), resize=(256, 256), resize_method="caffe-bilinear",
                      crop="none", mean=MARKET_RGB_MEAN, colour="RGB")
    caffe = spec(rgb).numpy()
    inner = (slice(None), slice(4, -4), slice(4, -4))
    diff = np.abs(mcn - caffe)
    assert diff[inner].mean() < 6  # same picture ...
    assert diff.max() > 20  # ... but the Caffe border is blended with black.
    assert caffe[:, 0, :].mean() < mcn[:, 0, :].mean()


def test_std_and_value_range(rgb: np.ndarray) -> None:
    spec = Preprocess(input_size=(128, 64), resize=None, resize_method="none", crop="none",
                      mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0), value_range=1.0)
    out = spec(rgb).numpy().transpose(1, 2, 0)
    x = rgb.astype(np.float32) * np.float32(1 / 255)
    expected = (x - np.float32(0.5)) / np.asarray((0.25, 0.5, 1.0), dtype=np.float32)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_pil_bilinear(rgb: np.ndarray) -> None:
    spec = Preprocess(input_size=(256, 128), resize=(256, 128), resize_method="pil-bilinear",
                      crop="none", mean=(0.0, 0.0, 0.0))
    ref = np.asarray(Image.fromarray(rgb).resize((128, 256), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(spec(rgb).numpy().transpose(1, 2, 0), ref)


def test_unreadable_inputs_name_the_path(tmp_path: Path) -> None:
    spec = market_matconvnet()
    missing = tmp_path / "nope.jpg"
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        spec(missing)
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    with pytest.raises(ValueError, match="junk.jpg"):
        spec(junk)
    with pytest.raises(TypeError, match="uint8"):
        spec(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        load_rgb(np.zeros((8, 8, 4), dtype=np.uint8))



def test_no_resize_no_crop_keeps_the_image_size() -> None:
    """Full-size retrieval (Oxford5k): the net takes each image at its own size."""
    spec = Preprocess(input_size=(256, 128), resize=None, resize_method="none", crop="none",
                      mean=(1.0, 2.0, 3.0))
    x = spec(np.full((8, 5, 3), 10, np.uint8))
    assert tuple(x.shape) == (3, 8, 5)
    assert x[:, 0, 0].tolist() == [9.0, 8.0, 7.0]


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("in_size", "size", "expected"),
    [((256, 256), (224, 224), (16, 16)), ((256, 256), (227, 227), (14, 14)),
     ((7, 10), (4, 3), (1, 3)), ((5, 5), (5, 5), (0, 0))],
)
def test_center_crop_offsets(in_size, size, expected) -> None:
    # Caffe: int(H/2.0 - h/2.0), truncation: (256 - 227)/2 = 14.5 -> 14.
    assert center_crop_offsets(in_size, size) == expected
    crop = center_crop(coord_image(*in_size), size)
    assert crop.shape[:2] == size
    assert (crop[0, 0, 0], crop[0, 0, 1]) == expected


def test_center_crop_too_large() -> None:
    with pytest.raises(ValueError, match="cannot crop"):
        center_crop(np.zeros((10, 10, 3)), (11, 5))


def test_random_crop_range_and_reproducibility() -> None:
    img = coord_image(256, 256)
    rng = np.random.default_rng(7)
    offsets = []
    for _ in range(2000):
        crop = random_crop(img, (224, 224), rng=rng)
        assert crop.shape == (224, 224, 3)
        offsets.append((int(crop[0, 0, 0]), int(crop[0, 0, 1])))
    rows, cols = np.array(offsets).T
    # randi(33) - 1: every offset 0..32 inclusive, nothing else.
    assert set(rows.tolist()) == set(range(33))
    assert set(cols.tolist()) == set(range(33))
    a = [random_crop(img, (224, 224), rng=np.random.default_rng(3))[0, 0, :2].tolist()
         for _ in range(2)]
    assert a[0] == a[1]
    with pytest.raises(ValueError, match="at least"):
        random_crop(np.zeros((250, 256, 3)), (224, 224))


def test_hflip_and_to_bgr() -> None:
    img = coord_image(3, 4)
    flipped = hflip(img)
    np.testing.assert_array_equal(flipped[:, 0], img[:, 3])
    np.testing.assert_array_equal(hflip(flipped), img)
    t = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(hflip(t)[:, :, 0], t[:, :, 3])
    bgr = to_bgr(np.dstack([np.full((2, 2), v) for v in (1, 2, 3)]))
    assert bgr[0, 0].tolist() == [3, 2, 1]
    with pytest.raises(ValueError, match="HxWx3"):
        to_bgr(np.zeros((2, 2)))


def test_subtract_mean_vector_and_image() -> None:
    img = np.full((4, 6, 3), 100, dtype=np.float32)
    out = subtract_mean(img, (1.0, 2.0, 3.0))
    assert out.dtype == np.float32
    assert out[0, 0].tolist() == [99.0, 98.0, 97.0]
    mean = np.arange(2 * 3 * 3, dtype=np.float64).reshape(2, 3, 3)
    with pytest.raises(ValueError, match="mean_resize is 'none'"):
        subtract_mean(img, mean)
    out = subtract_mean(img, mean, "matlab-bicubic-float")
    np.testing.assert_allclose(out, img - imresize(mean, (4, 6)), rtol=0, atol=1e-4)
    out = subtract_mean(img, mean.astype(np.float32), "caffe-bilinear")
    np.testing.assert_allclose(out, img - caffe_resize_image(mean.astype(np.float32), (4, 6)),
                               rtol=0, atol=1e-4)
