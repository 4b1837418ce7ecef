"""MATLAB ``imresize`` and Caffe's ``caffe.io.resize_image``, reproduced in numpy.

The published numbers of Zheng, Zheng & Yang depend on how each framework
resized the 128x64 crops: MatConvNet scripts call MATLAB ``imresize`` (bicubic,
uint8 in, uint8 out), the Caffe re-implementation calls ``caffe.io.resize_image``
(scikit-image bilinear with a zero border). Neither matches PIL or OpenCV, so both
are re-implemented here from their documented algorithms.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

__all__ = ["imresize", "caffe_resize_image", "resize_weights", "cubic", "triangle"]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB ``imresize``'s ``cubic``)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (
        -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    ) * ((ax > 1) & (ax <= 2))


def triangle(x: np.ndarray) -> np.ndarray:
    """Triangle kernel ``max(0, 1 - |x|)`` (MATLAB ``imresize``'s ``triangle``)."""
    return (x + 1.0) * ((x >= -1) & (x < 0)) + (1.0 - x) * ((x >= 0) & (x <= 1))


_KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    "bicubic": (cubic, 4.0),
    "bilinear": (triangle, 2.0),
}


@lru_cache(maxsize=64)
def _weights_cached(
    in_length: int, out_length: int, scale: float, method: str, antialias: bool
) -> np.ndarray:
    kernel, width = _KERNELS[method]
    if scale < 1 and antialias:
        def h(x: np.ndarray) -> np.ndarray:
            return scale * kernel(scale * x)

        width = width / scale
    else:
        h = kernel
    x = np.arange(1, out_length + 1, dtype=np.float64)[:, None]  # 1-based, as MATLAB
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    indices = left + np.arange(taps, dtype=np.float64)[None, :]
    weights = h(u - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # MATLAB mirrors out-of-range taps: aux = [1:in, in:-1:1]; aux(mod(idx-1, 2*in)+1)
    aux = np.concatenate([np.arange(1, in_length + 1), np.arange(in_length, 0, -1)])
    mirrored = aux[np.mod(indices.astype(np.int64) - 1, aux.size)] - 1  # to 0-based
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_length)[:, None], mirrored.shape)
    # All-zero tap columns are dropped by MATLAB; adding zeros is the same thing here.
    np.add.at(matrix, (rows, mirrored), weights)
    matrix.setflags(write=False)
    return matrix


def resize_weights(
    in_length: int,
    out_length: int,
    scale: float | None = None,
    method: str = "bicubic",
    antialias: bool = True,
) -> np.ndarray:
    """Dense (out_length, in_length) float64 matrix of one 1-D MATLAB resize pass.

    Row k holds the normalised weights of output sample k, with mirrored border
    taps folded onto their source pixels (MATLAB ``contributions``). ``scale``
    defaults to ``out_length / in_length``. The result is cached and read-only.
    """
    if method not in _KERNELS:
        raise ValueError(f"imresize method must be one of {sorted(_KERNELS)}, got {method!r}")
    if in_length < 1 or out_length < 1:
        raise ValueError(f"resize lengths must be >= 1, got in={in_length}, out={out_length}")
    if scale is None:
        scale = out_length / in_length
    return _weights_cached(int(in_length), int(out_length), float(scale), method, bool(antialias))


def _round_saturate(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round half away from zero and saturate to an integer dtype (MATLAB casting).

    Works in place on the float64 ``values``.
    """
    info = np.iinfo(dtype)
    if info.min == 0:
        # Clipping first is equivalent for unsigned types and lets floor(x + 0.5) work.
        np.clip(values, 0, info.max, out=values)
        np.add(values, 0.5, out=values)
        np.floor(values, out=values)
    else:
        sign = np.sign(values)
        np.abs(values, out=values)
        np.add(values, 0.5, out=values)
        np.floor(values, out=values)
        np.multiply(values, sign, out=values)
        np.clip(values, info.min, info.max, out=values)
    return values.astype(dtype)


def _resize_axis(image: np.ndarray, axis: int, matrix: np.ndarray) -> np.ndarray:
    """Apply one 1-D pass along ``axis`` and cast back to the input class."""
    moved = np.moveaxis(image, axis, 0)
    flat = moved.reshape(moved.shape[0], -1).astype(np.float64, copy=False)
    out = matrix @ flat
    if np.issubdtype(image.dtype, np.integer):
        out = _round_saturate(out, image.dtype)
    else:
        out = out.astype(image.dtype, copy=False)
    return np.moveaxis(out.reshape((matrix.shape[0],) + moved.shape[1:]), 0, axis)


def imresize(
    image: np.ndarray,
    size: tuple[int, int] | float | None = None,
    method: str = "bicubic",
    antialias: bool = True,
    *,
    scale: float | None = None,
) -> np.ndarray:
    """Resize like MATLAB ``imresize(A, [rows cols], method)`` (R2007a+ algorithm).

    What is reproduced (``imresize.m``/``contributions``):

    * kernels: ``"bicubic"`` = Keys cubic, a = -0.5, width 4; ``"bilinear"`` =
      triangle, width 2;
    * mapping ``u = x/scale + 0.5*(1 - 1/scale)`` (1-based), ``scale = out/in`` per
      dimension when a size is given, or the given scalar ``scale`` for both
      dimensions (output ``ceil(scale*in)``), exactly as MATLAB;
    * when shrinking with ``antialias`` the kernel is ``scale*k(scale*x)`` and its
      width ``width/scale``; ``floor(u - width/2)`` + ``ceil(width) + 2`` taps;
      weights normalised per output; border taps mirrored (symmetric padding);
    * the dimension with the smaller scale is resized first (ties: rows first);
    * every 1-D pass returns the input's class, as ``imresizemex`` does: integer
      images (uint8 ...) are rounded half away from zero and saturated after
      EACH pass; float32 stays float32 after each pass; float64 stays float64.
      Arithmetic is float64.

    ``image`` is HxW or HxWxC (channels resized independently). ``size`` may be
    ``(rows, cols)`` or, like MATLAB's ``imresize(A, 0.5)``, a scalar scale.
    Not reproduced: NaN sizes, indexed/logical images, other kernels. The sum
    order of taps differs from MATLAB's C code (float64 rounding-level only).
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"imresize expects a numpy array, got {type(image).__name__}")
    if image.ndim not in (2, 3):
        raise ValueError(f"imresize expects an HxW or HxWxC array, got shape {image.shape}")
    if image.dtype == np.bool_ or not (
        np.issubdtype(image.dtype, np.integer) or image.dtype in (np.float32, np.float64)
    ):
        raise TypeError(
            f"imresize supports integer, float32 and float64 images, got dtype {image.dtype}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"imresize got an empty image of shape {image.shape}")
    if method not in _KERNELS:
        raise ValueError(f"imresize method must be one of {sorted(_KERNELS)}, got {method!r}")

    if isinstance(size, (int, float, np.integer, np.floating)) and not isinstance(size, bool):
        if scale is not None:
            raise ValueError("imresize: give either a scalar size or scale=, not both")
        scale, size = float(size), None
    in_shape = image.shape[:2]
    if size is not None:
        if scale is not None:
            raise ValueError("imresize: give either size or scale, not both")
        if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
            raise ValueError(f"imresize size must be two positive integers, got {size!r}")
        out_shape = (int(size[0]), int(size[1]))
        scales = (out_shape[0] / in_shape[0], out_shape[1] / in_shape[1])
    elif scale is not None:
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"imresize scale must be a positive number, got {scale!r}")
        scales = (float(scale), float(scale))
        out_shape = (math.ceil(scale * in_shape[0]), math.ceil(scale * in_shape[1]))
    else:
        raise ValueError("imresize needs a size (rows, cols) or a scale")

    out = image
    # MATLAB: [~, order] = sort(scale); sort is stable, so ties keep rows first.
    for dim in sorted((0, 1), key=lambda d: scales[d]):
        matrix = resize_weights(in_shape[dim], out_shape[dim], scales[dim], method, antialias)
        out = _resize_axis(out, dim, matrix)
    return np.ascontiguousarray(out)


def _skimage_bilinear_matrix(in_length: int, out_length: int) -> np.ndarray:
    """1-D weights of skimage 0.12/0.13 ``resize(order=1, mode='constant', cval=0)``.

    Output sample r reads input coordinate ``(in/out)*(r + 0.5) - 0.5``; its two
    neighbours ``floor``/``ceil`` get weights ``1-d``/``d``; neighbours outside
    ``[0, in-1]`` read cval = 0, i.e. are simply dropped from the sum.
    """
    coords = (in_length / out_length) * (np.arange(out_length, dtype=np.float64) + 0.5) - 0.5
    lo = np.floor(coords)
    hi = np.ceil(coords)
    frac = coords - lo
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.arange(out_length)
    for idx, w in ((lo, 1.0 - frac), (hi, frac)):
        inside = (idx >= 0) & (idx <= in_length - 1)
        np.add.at(matrix, (rows[inside], idx[inside].astype(np.int64)), w[inside])
    return matrix


def caffe_resize_image(
    im: np.ndarray, size: tuple[int, int], interp_order: int = 1
) -> np.ndarray:
    """``caffe.io.resize_image(im, size)`` for HxWx1 / HxWx3 float images (BVLC io.py).

    Caffe min-max normalises the image to [0, 1] (float32 arithmetic), calls
    ``skimage.transform.resize(im_std, size, order=1)`` and maps back with
    ``* (max - min) + min`` before casting to float32; a constant image
    short-circuits to a float32 array filled with its value.

    The resize reproduced is scikit-image 0.12/0.13 (2016-2017) with its defaults
    ``mode='constant', cval=0, clip=True``: ``warp`` with the affine map
    ``in = (in_len/out_len)*(out + 0.5) - 0.5`` per axis, bilinear
    ``_warp_fast``/``bilinear_interpolation`` in float64 whose out-of-image
    neighbours (``get_pixel2d`` mode 'C') read 0 — so the outermost output rows
    and columns of an upsample blend with black — then clipped to the input
    range [0, 1]. skimage >= 0.15 changed the default mode to 'reflect'.
    skimage got the map from ``AffineTransform.estimate`` (an SVD), so its
    coordinates may differ from the exact ones used here by ~1e-15.
    Only ``interp_order=1`` (Caffe's default) is implemented; Caffe's
    ``scipy.ndimage.zoom`` branch for other channel counts is not.
    """
    if interp_order != 1:
        raise NotImplementedError(
            f"caffe_resize_image implements interp_order=1 only, got {interp_order}"
        )
    im = np.asarray(im)
    if im.ndim != 3 or im.shape[-1] not in (1, 3):
        raise ValueError(f"caffe_resize_image expects an HxWx1 or HxWx3 array, got {im.shape}")
    if not np.issubdtype(im.dtype, np.floating):
        raise TypeError(f"caffe_resize_image expects a float image (caffe.io.load_image gives "
                        f"[0, 1] float32), got dtype {im.dtype}")
    if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
        raise ValueError(f"caffe_resize_image size must be two positive integers, got {size!r}")
    out_h, out_w = int(size[0]), int(size[1])
    im_min, im_max = im.min(), im.max()
    if not im_max > im_min:
        return np.full((out_h, out_w, im.shape[-1]), im_min, dtype=np.float32)
    im_std = (im - im_min) / (im_max - im_min)  # float32 stays float32, as in Caffe
    rows = _skimage_bilinear_matrix(im.shape[0], out_h)
    cols = _skimage_bilinear_matrix(im.shape[1], out_w)
    std64 = im_std.astype(np.float64)
    resized = np.tensordot(rows, std64, axes=(1, 0))  # (out_h, W, C)
    resized = np.moveaxis(np.tensordot(cols, resized, axes=(1, 1)), 0, 1)  # (out_h, out_w, C)
    # skimage clip=True: clip to the input's [min, max], here exactly [0, 1].
    np.clip(resized, im_std.min(), im_std.max(), out=resized)
    return (resized * (im_max - im_min) + im_min).astype(np.float32)
