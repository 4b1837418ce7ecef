"""``caffe_resize_image`` checked against scikit-image itself, not only against its own maths.

``caffe.io.resize_image`` (BVLC io.py) min-max normalises to [0, 1], calls scikit-image
0.12/0.13's ``resize(im_std, size, order=1)`` and maps back. The oracle here is today's
scikit-image called so that it computes what 0.12 computed. What changed since 0.12/0.13, and
how the oracle undoes it:

* ``mode`` defaulted to ``'constant'`` (zero border) then, ``'reflect'`` since 0.15: we pass
  ``mode='constant', cval=0``;
* ``anti_aliasing`` did not exist (0.14 added it, True by default when shrinking since 0.15):
  we pass ``anti_aliasing=False``;
* 0.12's ``img_as_float`` turned the float32 ``im_std`` into float64 and ``_warp_fast``
  worked in float64; today's resize keeps float32 as float32 (``ndi.zoom`` rounds its output
  to float32), so we hand it ``im_std.astype(float64)`` and ``preserve_range=True`` (on a
  [0, 1] float image, 0.12's ``preserve_range=False`` was a no-op);
* the engine: 0.12 estimated the affine map ``in = (in/out)*(out + 0.5) - 0.5`` from three
  corner pairs with ``AffineTransform.estimate`` (an SVD, LAPACK-dependent) and ran
  ``warp``'s bilinear ``_warp_fast``; today's resize calls ``scipy.ndimage.zoom(...,
  grid_mode=True, mode='grid-constant')`` with the exact map. Both read zeros outside
  the image and clip to the input range [0, 1].

One real difference: for an output of one row or one column (but not 1x1) the three corner
points are collinear, so 0.12's SVD estimate had no unique solution and its map depended on
the LAPACK build (re-running 0.12's estimate here, 13x8 -> 9x1 reads columns up to 0.55 px
off; today's ``estimate`` refuses and returns NaN). ``caffe_resize_image`` uses the exact
map there, which is what today's ``resize`` computes; the 0.12-engine comparison below is
restricted to outputs of at least 2x2 (or 1x1). Caffe nets never resize to such sizes.

Tolerances (measured on this machine, numpy 2 / scikit-image 0.26 / scipy):

* float64 resize core vs today's ``resize``: <= 3.3e-16 on [0, 1] values (same map, the
  taps are only summed in another order), asserted at 2e-15;
* vs the 0.12 engine re-run with today's ``AffineTransform.estimate`` + ``warp``: <= 5.4e-13,
  because the SVD-estimated map is off by up to ~6e-14 px (asserted at 5e-12: other LAPACKs
  give other last bits). Bit-exactness to 0.12 is therefore not defined even in principle;
* the float32 result: at most 1 ulp apart (the float64 differences above flip the final
  ``astype(float32)`` rounding of ~0.07% of the values on real images), and at least 99% of
  the values bit-identical.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

skimage = pytest.importorskip("skimage")
from skimage.transform import AffineTransform, resize, warp  # noqa: E402

from porting.imresize import _skimage_bilinear_matrix, caffe_resize_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMAGES = sorted((ROOT / "validation" / "data" / "market1501_samples").glob("*.jpg")) + sorted(
    (ROOT / "tests" / "fixtures" / "preprocess").glob("*.jpg"))
# Caffe's usual input sizes (up from 128x64), half size (down), odd sizes both ways.
SIZES = [(224, 224), (227, 227), (64, 32), (37, 19), (129, 65)]

CORE_ATOL = 2e-15
SVD_ENGINE_ATOL = 5e-12


def load_image(path: Path, color: bool = True) -> np.ndarray:
    """``caffe.io.load_image``: ``img_as_float(imread(...)).astype(float32)``, HxWxC."""
    img = np.asarray(Image.open(path).convert("RGB" if color else "L"))
    out = skimage.img_as_float(img).astype(np.float32)
    return out if color else out[:, :, np.newaxis]


def normalise(im: np.ndarray) -> np.ndarray:
    """Caffe's ``im_std`` (float32 arithmetic), as skimage 0.12 received it (float64)."""
    return ((im - im.min()) / (im.max() - im.min())).astype(np.float64)


def skimage_core(std: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Today's resize, called to compute what 0.12's ``resize(im_std, size, order=1)`` did."""
    return resize(std, size, order=1, mode="constant", cval=0, clip=True, anti_aliasing=False,
                  preserve_range=True)


def skimage_012_engine(std: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """0.12's ``resize`` body: the corner-estimated affine map and ``warp``."""
    rows, cols = size
    in_rows, in_cols = std.shape[:2]
    if rows == 1 and cols == 1:
        tform = AffineTransform(translation=(in_cols / 2.0 - 0.5, in_rows / 2.0 - 0.5))
    else:
        src = np.array([[1, 1], [1, rows], [cols, rows]], dtype=np.float64) - 1
        dst = np.zeros(src.shape)
        dst[:, 0] = in_cols / cols * (src[:, 0] + 0.5) - 0.5
        dst[:, 1] = in_rows / rows * (src[:, 1] + 0.5) - 0.5
        tform = AffineTransform()
        with warnings.catch_warnings():  # `estimate` is deprecated in favour of from_estimate
            warnings.simplefilter("ignore")
            tform.estimate(src, dst)
    return warp(std, tform, output_shape=size, order=1, mode="constant", cval=0, clip=True,
                preserve_range=True)


def caffe_oracle(im: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``caffe.io.resize_image`` with today's scikit-image as its resize."""
    lo, hi = im.min(), im.max()
    return (skimage_core(normalise(im), size) * (hi - lo) + lo).astype(np.float32)


def our_core(std: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The float64 resize inside ``caffe_resize_image`` (its separable 1-D weights)."""
    rows = _skimage_bilinear_matrix(std.shape[0], size[0])
    cols = _skimage_bilinear_matrix(std.shape[1], size[1])
    out = np.tensordot(rows, std, axes=(1, 0))  # (out_h, W, C)
    out = np.moveaxis(np.tensordot(cols, out, axes=(1, 1)), 0, 1)
    return np.clip(out, 0.0, 1.0)


def assert_float32_close(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    np.testing.assert_array_max_ulp(ours, ref, maxulp=1)
    assert np.mean(ours == ref) >= 0.99


def test_fixture_images_exist() -> None:
    assert len(IMAGES) == 14, IMAGES


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_real_images_match_skimage(path: Path) -> None:
    for color in (True, False):
        im = load_image(path, color)
        std = normalise(im)
        for size in SIZES:
            ref = skimage_core(std, size)
            assert ref.shape == (*size, im.shape[2])
            np.testing.assert_allclose(our_core(std, size), ref, rtol=0, atol=CORE_ATOL)
            assert_float32_close(caffe_resize_image(im, size), caffe_oracle(im, size))


def test_real_images_match_the_012_engine() -> None:
    for path in IMAGES[:4]:
        std = normalise(load_image(path))
        for size in SIZES:
            np.testing.assert_allclose(our_core(std, size), skimage_012_engine(std, size),
                                       rtol=0, atol=SVD_ENGINE_ATOL)


def random_cases(n: int, seed: int) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Random float images (any range, 1 or 3 channels) and output sizes, up and down, odd,
    plus the edge sizes (1 row / 1 column / 1 pixel in or out)."""
    rng = np.random.default_rng(seed)
    shapes = [((1, 1), (5, 3)), ((7, 1), (1, 1)), ((1, 9), (1, 20)), ((6, 5), (1, 7)),
              ((13, 8), (9, 1)), ((2, 2), (3, 3)), ((3, 3), (2, 2))]
    shapes += [(tuple(rng.integers(1, 60, 2)), tuple(rng.integers(1, 120, 2)))
               for _ in range(n)]
    cases = []
    for (h, w), size in shapes:
        ch = int(rng.choice([1, 3]))
        scale, offset = rng.uniform(0.01, 300.0), rng.uniform(-100.0, 100.0)
        im = (rng.random((int(h), int(w), ch)) * scale + offset).astype(np.float32)
        if im.max() > im.min():  # a constant image short-circuits in Caffe
            cases.append((im, (int(size[0]), int(size[1]))))
    return cases


@pytest.mark.parametrize("seed", [0, 1])
def test_random_images_match_skimage(seed: int) -> None:
    cases = random_cases(150, seed)
    assert any(s[0] > im.shape[0] for im, s in cases) and any(s[0] < im.shape[0]
                                                              for im, s in cases)
    for im, size in cases:
        std = normalise(im)
        ref = skimage_core(std, size)
        np.testing.assert_allclose(our_core(std, size), ref, rtol=0, atol=CORE_ATOL,
                                   err_msg=f"{im.shape} -> {size}")
        if min(size) > 1 or size == (1, 1):  # 0.12's map estimate is degenerate otherwise
            np.testing.assert_allclose(our_core(std, size), skimage_012_engine(std, size),
                                       rtol=0, atol=SVD_ENGINE_ATOL,
                                       err_msg=f"{im.shape} -> {size}")
        ours, want = caffe_resize_image(im, size), caffe_oracle(im, size)
        assert ours.dtype == np.float32 and ours.shape == want.shape
        np.testing.assert_array_max_ulp(ours, want, maxulp=1)


def test_zero_border_is_what_skimage_does() -> None:
    """The border blend with black that separates 0.12's default from today's 'reflect'."""
    im = np.ones((4, 4, 1), dtype=np.float32)
    im[0, 0, 0] = 0.0  # not constant, so Caffe does not short-circuit
    ours = caffe_resize_image(im, (8, 8))
    assert_float32_close(ours, caffe_oracle(im, (8, 8)))
    # The last output sample reads input 3.25 per axis: weight 0.25 on the zero border.
    assert ours[-1, -1, 0] == pytest.approx(0.75 * 0.75)
    reflect = resize(normalise(im), (8, 8), order=1, mode="reflect", anti_aliasing=False,
                     preserve_range=True)
    assert reflect[-1, -1, 0] == 1.0 and not np.allclose(ours, reflect)
