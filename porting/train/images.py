"""Training images: the resize of each recipe (MATLAB ``imresize`` bicubic, OpenCV's own
``cv2.resize`` for Caffe's data layer), the JPEG re-encoding, the resized-image cache and batch
assembly."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from porting.outputs import atomic_write
from porting.preprocess import load_rgb
from porting.train.recipe import CACHE_VERSION


def opencv_resize_linear(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv::resize(.., INTER_LINEAR)`` of a uint8 image, as Caffe's ``ReadImageToCVMat``
    (``ImageData`` / caffe-reid's data layer) does: OpenCV's own ``cv2.resize``, whose 11-bit
    fixed-point arithmetic a float re-implementation misses by one grey level on ~11% of the
    values of the bundled Market-1501 samples. ``size`` is ``(height, width)``."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - a core dependency
        raise RuntimeError("the caffe-dxy recipe resizes with OpenCV, as Caffe's data layer "
                           "does: pip install 'opencv-python-headless>=4,<5'") from None
    img = np.ascontiguousarray(img, dtype=np.uint8)
    return cv2.resize(img, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)


def _jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _prepare_image(item: Any, size: int, method: str, jpeg_quality: int) -> np.ndarray:
    from porting.imresize import imresize

    rgb = load_rgb(item)
    if method == "matlab-bicubic":
        out = imresize(rgb, (size, size), "bicubic")
    elif method == "opencv-bilinear":
        out = opencv_resize_linear(rgb, (size, size))
    else:
        raise ValueError(f"unknown resize method {method!r}")
    if jpeg_quality:
        out = _jpeg_roundtrip(out, jpeg_quality)
    return out


def _items_digest(items: Sequence[Any], names: Sequence[str]) -> str:
    h = hashlib.sha256()
    for item, name in zip(items, names, strict=True):
        if isinstance(item, (str, os.PathLike)):
            st = os.stat(item)
            h.update(f"{os.fspath(item)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        else:
            h.update(f"{name}\n".encode())
    token = getattr(items, "cache_token", None)
    if callable(token):
        h.update(token().encode())
    return h.hexdigest()


def build_cache(items: Sequence[Any], names: Sequence[str], size: int, method: str,
                jpeg_quality: int, workers: int = 0, cache_dir: str | os.PathLike | None = None,
                progress: bool = False) -> np.ndarray:
    """All training images resized once: ``(N, size, size, 3)`` uint8 RGB.

    ``prepare_data.m`` writes ``bounding_box_train_256`` once; likewise, with ``cache_dir``
    the array is stored as ``.npy`` (keyed by the file list, sizes, mtimes and settings) and
    memory-mapped by later runs and by the other processes of a distributed run.
    """
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(
            f"v{CACHE_VERSION}:{size}:{method}:{jpeg_quality}:{_items_digest(items, names)}"
            .encode()).hexdigest()[:24]
        path = Path(cache_dir) / f"train-images-{key}.npy"
        if path.is_file():
            arr = np.load(path, mmap_mode="r")
            if arr.shape == (len(items), size, size, 3):
                return arr
    out = np.empty((len(items), size, size, 3), dtype=np.uint8)
    t0 = time.time()

    def one(i: int) -> None:
        out[i] = _prepare_image(items[i], size, method, jpeg_quality)

    n_workers = workers if workers > 0 else min(8, os.cpu_count() or 1)
    if n_workers > 1 and len(items) > 1:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            for done, _ in enumerate(pool.map(one, range(len(items))), start=1):
                if progress and (done % 500 == 0 or done == len(items)):
                    print(f"resizing training images: {done}/{len(items)} "
                          f"({time.time() - t0:.0f} s)", flush=True)
    else:
        for i in range(len(items)):
            one(i)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: np.save(open(tmp, "wb"), out))  # noqa: SIM115
    return out


def assemble(cache: np.ndarray, index: np.ndarray, offset: np.ndarray, flip: np.ndarray,
             crop: int, framework: str) -> np.ndarray:
    """Crops ``(n, crop, crop, 3)`` uint8 of the cached images.

    MatConvNet (``getBatch``): ``vl_imreadjpeg(.., 'Flip')`` mirrors the whole 256 image, then
    ``tim(x:x+223, y:y+223, :)`` crops it, so a mirrored crop at column offset ``y`` comes from
    columns ``W - crop - y ..`` of the unmirrored image. Caffe (``DataTransformer``): the crop
    is taken at ``(h_off, w_off)`` and then mirrored.
    """
    n = len(index)
    out = np.empty((n, crop, crop, 3), dtype=np.uint8)
    width = cache.shape[2]
    for k in range(n):
        top, left = int(offset[k, 0]), int(offset[k, 1])
        if flip[k] and framework == "matconvnet":
            left = width - crop - left
        patch = cache[int(index[k]), top:top + crop, left:left + crop]
        out[k] = patch[:, ::-1] if flip[k] else patch
    return out


def to_input(batch_u8: torch.Tensor, mean: torch.Tensor, bgr: bool) -> torch.Tensor:
    """uint8 NHWC RGB to the network's float32 NCHW input: ``single(crop) - averageImage``
    (MatConvNet) or ``(pixel - mean_value)`` in BGR (Caffe)."""
    x = batch_u8.permute(0, 3, 1, 2).float()
    if bgr:
        x = x.flip(1)
    return (x - mean.view(1, 3, 1, 1)).contiguous(memory_format=torch.contiguous_format)


