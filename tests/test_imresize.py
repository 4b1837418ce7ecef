"""Tests for the MATLAB ``imresize`` and Caffe ``resize_image`` re-implementations."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from porting.imresize import caffe_resize_image, imresize, resize_weights


def keys(x: float) -> float:
    """Keys cubic kernel, a = -0.5, written out independently of the library."""
    x = abs(x)
    if x <= 1:
        return 1.5 * x**3 - 2.5 * x**2 + 1
    if x <= 2:
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
    return 0.0


def round_half_away(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, np.floor(x + 0.5), np.ceil(x - 0.5))


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(round_half_away(x), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(20170101)


# --------------------------------------------------------------------------- hand computed


def test_hand_computed_1d_upsample_2_to_4_with_mirrored_borders() -> None:
    # MATLAB: u = x/2 + 0.25 for x = 1..4; taps are the 1-based indices within
    # the kernel support; aux = [1 2 2 1] mirrors index -1 -> 2, 0 -> 1, 3 -> 2, 4 -> 1.
    a = {1: 10.0, 2: 50.0}
    taps_and_sources = {
        0.75: [(-1, 2), (0, 1), (1, 1), (2, 2)],
        1.25: [(0, 1), (1, 1), (2, 2), (3, 2)],
        1.75: [(0, 1), (1, 1), (2, 2), (3, 2)],
        2.25: [(1, 1), (2, 2), (3, 2), (4, 1)],
    }
    expected = np.array(
        [sum(keys(u - t) * a[s] for t, s in taps) for u, taps in taps_and_sources.items()]
    )
    column = np.array([[a[1]], [a[2]]])
    out = imresize(column, (4, 1))
    np.testing.assert_allclose(out[:, 0], expected, rtol=0, atol=1e-12)
    # The mirrored border makes the first output overshoot: 1.09375*10 - 0.09375*50.
    assert out[0, 0] < a[1]

    # The same numbers as a weight matrix.
    w = resize_weights(2, 4)
    for k, (u, taps) in enumerate(taps_and_sources.items()):
        row = np.zeros(2)
        for t, s in taps:
            row[s - 1] += keys(u - t)
        np.testing.assert_allclose(w[k], row, rtol=0, atol=1e-15)


def test_keys_kernel_matches_the_formula() -> None:
    from porting.imresize import cubic

    xs = np.linspace(-2.5, 2.5, 101)
    np.testing.assert_allclose(cubic(xs), [keys(x) for x in xs], rtol=0, atol=1e-15)


def test_uint8_is_rounded_after_each_pass() -> None:
    # 2 -> 4 weights (see the test above), summed per source pixel:
    # out1 = (k(.25)+k(.75)) a1 + (k(1.25)+k(1.75)) a2 = 35/32 a1 - 3/32 a2, etc.
    w = np.array(
        [
            [keys(0.25) + keys(0.75), keys(1.25) + keys(1.75)],
            [keys(1.25) + keys(0.25), keys(0.75) + keys(1.75)],
            [keys(0.75) + keys(1.75), keys(1.25) + keys(0.25)],
            [keys(1.25) + keys(1.75), keys(0.25) + keys(0.75)],
        ]
    )
    a = np.array([[10, 200], [90, 40]], dtype=np.uint8)
    # Equal scales: rows first, then columns, each pass rounded to uint8.
    per_pass = to_uint8(to_uint8(w @ a.astype(np.float64)).astype(np.float64) @ w.T)
    once = to_uint8(w @ a.astype(np.float64) @ w.T)
    assert np.any(per_pass != once), "test image must be sensitive to per-pass rounding"
    out = imresize(a, (4, 4))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, per_pass)


def test_dimension_with_smaller_scale_goes_first(rng: np.random.Generator) -> None:
    a = rng.integers(0, 256, (12, 10), dtype=np.uint8)
    size = (30, 15)  # scales 2.5 (rows) and 1.5 (cols): columns first
    wr, wc = resize_weights(12, 30), resize_weights(10, 15)
    cols_first = to_uint8(wr @ to_uint8(a.astype(np.float64) @ wc.T).astype(np.float64))
    rows_first = to_uint8(to_uint8(wr @ a.astype(np.float64)).astype(np.float64) @ wc.T)
    assert np.any(cols_first != rows_first)
    np.testing.assert_array_equal(imresize(a, size), cols_first)


# --------------------------------------------------------------------------- vs Pillow


def _pillow(channel: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    resample = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
    pil = Image.fromarray(channel.astype(np.float32), mode="F")
    return np.asarray(pil.resize((size[1], size[0]), resample[method]), dtype=np.float64)


@pytest.mark.parametrize("method", ["bicubic", "bilinear"])
@pytest.mark.parametrize(
    ("in_shape", "out_shape"),
    [((128, 64), (256, 256)), ((128, 64), (50, 30)), ((128, 64), (100, 200))],
    ids=["up-market", "down-antialias", "mixed"],
)
def test_matches_pillow_away_from_borders(
    rng: np.random.Generator,
    method: str,
    in_shape: tuple[int, int],
    out_shape: tuple[int, int],
) -> None:
    # Pillow uses the same kernels (Keys a=-0.5 / triangle), pixel-centre mapping and
    # antialiasing, but renormalises clipped windows at borders where MATLAB mirrors.
    image = (rng.random(in_shape + (3,)) * 255).astype(np.float32).astype(np.float64)
    out = imresize(image, out_shape, method)
    margin_r = 3 * max(1, round(in_shape[0] / out_shape[0])) + 3
    margin_c = 3 * max(1, round(in_shape[1] / out_shape[1])) + 3
    interior = (slice(margin_r, -margin_r), slice(margin_c, -margin_c))
    for c in range(3):
        ref = _pillow(image[:, :, c], out_shape, method)
        np.testing.assert_allclose(out[:, :, c][interior], ref[interior], rtol=0, atol=255e-6)
        # ...and the borders really are treated differently (mirror vs renormalise),
        # except for a bilinear upsample whose border taps fold onto the edge pixel.
        if method == "bicubic" or out_shape[0] < in_shape[0]:
            assert np.abs(out[:, :, c] - ref).max() > 1e-2


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("method", ["bicubic", "bilinear"])
@pytest.mark.parametrize("out_shape", [(256, 256), (37, 21)])
def test_constant_image_stays_constant(method: str, out_shape: tuple[int, int]) -> None:
    u8 = np.full((128, 64, 3), 173, dtype=np.uint8)
    np.testing.assert_array_equal(imresize(u8, out_shape, method), 173)
    f = np.full((128, 64), 0.3, dtype=np.float64)
    np.testing.assert_allclose(imresize(f, out_shape, method), 0.3, rtol=1e-14, atol=0)


@pytest.mark.parametrize("method", ["bicubic", "bilinear"])
@pytest.mark.parametrize(("n_in", "n_out", "antialias"), [(40, 97, True), (97, 40, False)])
def test_linear_ramp_stays_linear_inside(method: str, n_in: int, n_out: int,
                                         antialias: bool) -> None:
    ramp = np.tile(np.arange(1, n_in + 1, dtype=np.float64)[:, None], (1, 5))
    out = imresize(ramp, (n_out, 5), method, antialias=antialias)
    scale = n_out / n_in
    x = np.arange(1, n_out + 1)
    u = x / scale + 0.5 * (1 - 1 / scale)  # where each output sample reads the input
    inside = (u > 3) & (u < n_in - 2)
    assert inside.sum() > n_out // 2
    np.testing.assert_allclose(out[inside, 2], u[inside], rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", ["bicubic", "bilinear"])
def test_resize_commutes_with_flips(rng: np.random.Generator, method: str) -> None:
    u8 = rng.integers(0, 256, (128, 64, 3), dtype=np.uint8)
    # Market shape: scales 2 and 4 give dyadic weights, so uint8 results are exact.
    out = imresize(u8, (256, 256), method)
    np.testing.assert_array_equal(imresize(u8[:, ::-1], (256, 256), method), out[:, ::-1])
    np.testing.assert_array_equal(imresize(u8[::-1], (256, 256), method), out[::-1])
    f = rng.random((45, 31))
    out_f = imresize(f, (20, 77), method)
    np.testing.assert_allclose(imresize(f[:, ::-1], (20, 77), method), out_f[:, ::-1],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(imresize(f[::-1], (20, 77), method), out_f[::-1],
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_output_dtype_and_shape_follow_matlab(dtype: type) -> None:
    image = np.ones((10, 6, 3), dtype=dtype)
    out = imresize(image, (20, 24))
    assert out.dtype == dtype
    assert out.shape == (20, 24, 3)
    assert imresize(image[:, :, 0], (5, 3)).shape == (5, 3)


def test_float32_input_is_not_rounded(rng: np.random.Generator) -> None:
    image = rng.integers(0, 256, (16, 8, 3)).astype(np.float32)
    out = imresize(image, (32, 32))
    assert out.dtype == np.float32
    assert np.any(out != np.round(out))
    np.testing.assert_allclose(out, imresize(image.astype(np.float64), (32, 32)), atol=1e-4)


def test_uint8_saturates_bicubic_overshoot() -> None:
    edge = np.array([[0, 0, 0, 0, 255, 255, 255, 255]], dtype=np.uint8)
    as_float = imresize(edge.astype(np.float64), (1, 32))
    assert as_float.min() < -1 and as_float.max() > 256  # Keys overshoot exists
    out = imresize(edge, (1, 32))
    # A single row: the row pass is the identity, so one rounding + saturation.
    np.testing.assert_array_equal(out, to_uint8(as_float))
    assert out.min() == 0 and out.max() == 255


def test_scale_argument_uses_ceil_and_the_given_scale() -> None:
    image = np.arange(35, dtype=np.float64).reshape(7, 5)
    out = imresize(image, 0.5)
    assert out.shape == (4, 3)  # ceil(3.5), ceil(2.5)
    np.testing.assert_array_equal(imresize(image, scale=0.5), out)
    # MATLAB uses the given scale (0.5), not out/in (4/7), in the mapping.
    wr = resize_weights(7, 4, 0.5)
    wc = resize_weights(5, 3, 0.5)
    np.testing.assert_allclose(out, wr @ image @ wc.T, rtol=0, atol=1e-12)
    assert not np.allclose(wr, resize_weights(7, 4))


def test_antialias_only_changes_downsampling() -> None:
    assert np.array_equal(resize_weights(10, 25, antialias=True),
                          resize_weights(10, 25, antialias=False))
    narrow = resize_weights(40, 10, antialias=False)
    wide = resize_weights(40, 10, antialias=True)
    assert (np.count_nonzero(narrow, axis=1) <= 4).all()
    assert (np.count_nonzero(wide[2:-2], axis=1) >= 15).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": (0, 4)}, "size"),
        ({"size": (4,)}, "size"),
        ({"size": (4, 4), "method": "lanczos3"}, "lanczos3"),
        ({"size": None}, "size"),
        ({"size": (4, 4), "scale": 2.0}, "either"),
        ({"scale": -1.0}, "scale"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        imresize(np.zeros((4, 4)), **kwargs)


def test_bad_images_are_rejected() -> None:
    with pytest.raises(ValueError, match="shape"):
        imresize(np.zeros((2, 2, 2, 2)), (4, 4))
    with pytest.raises(TypeError, match="bool"):
        imresize(np.zeros((2, 2), dtype=bool), (4, 4))
    with pytest.raises(TypeError, match="numpy"):
        imresize([[1, 2], [3, 4]], (4, 4))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Caffe


def test_caffe_resize_matches_an_independent_bilinear_with_zero_border(
    rng: np.random.Generator,
) -> None:
    im = (rng.random((128, 64, 3)) * 0.8 + 0.1).astype(np.float32)
    out = caffe_resize_image(im, (256, 256))
    assert out.dtype == np.float32 and out.shape == (256, 256, 3)
    lo, hi = im.min(), im.max()
    std = ((im - lo) / (hi - lo)).astype(np.float64)
    r = (128 / 256) * (np.arange(256) + 0.5) - 0.5
    c = (64 / 256) * (np.arange(256) + 0.5) - 0.5
    rr, cc = np.meshgrid(r, c, indexing="ij")
    ref = np.stack(
        [
            ndimage.map_coordinates(std[:, :, k], [rr, cc], order=1, mode="grid-constant",
                                    cval=0.0, prefilter=False)
            for k in range(3)
        ],
        axis=-1,
    )
    ref = (np.clip(ref, 0, 1) * (hi - lo) + lo).astype(np.float32)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)


def test_caffe_resize_border_blends_with_zero() -> None:
    im = np.array([[0.0, 1.0], [1.0, 0.5]], dtype=np.float32)[:, :, None]  # min 0, max 1
    out = caffe_resize_image(im, (4, 4))[:, :, 0]
    # Output 0 reads input -0.25: floor -> -1 (outside, reads 0) with weight 0.25 and
    # 0 with weight 0.75, in both directions. Output 1 reads 0.25: 0.75 / 0.25 on 0 and 1.
    assert out[0, 0] == pytest.approx(0.75 * 0.75 * 0.0)
    assert out[0, 1] == pytest.approx(0.75 * (0.75 * 0.0 + 0.25 * 1.0))
    assert out[1, 1] == pytest.approx(0.5625 * 0 + 0.1875 * 1 + 0.1875 * 1 + 0.0625 * 0.5)
    assert out[3, 3] == pytest.approx(0.75 * 0.75 * 0.5)


def test_caffe_resize_constant_and_range() -> None:
    const = np.full((5, 7, 3), 0.25, dtype=np.float32)
    out = caffe_resize_image(const, (9, 4))
    assert out.dtype == np.float32 and out.shape == (9, 4, 3)
    np.testing.assert_array_equal(out, np.float32(0.25))
    ramp = np.linspace(10, 20, 30, dtype=np.float32).reshape(5, 6, 1)
    resized = caffe_resize_image(ramp, (11, 13))
    assert resized.shape == (11, 13, 1)
    # Values are mapped back to the input's range (the border may darken towards min).
    assert resized.min() >= 10 - 1e-5 and resized.max() <= 20 + 1e-5
    with pytest.raises(ValueError, match="HxWx1 or HxWx3"):
        caffe_resize_image(np.zeros((4, 4, 2), np.float32), (8, 8))
    with pytest.raises(NotImplementedError):
        caffe_resize_image(ramp, (8, 8), interp_order=3)
