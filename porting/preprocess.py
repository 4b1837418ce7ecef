"""Input preprocessing specs (``Preprocess``) and the two source pipelines.

Every converted checkpoint carries a :class:`Preprocess` (stored with
``to_dict()``) saying exactly how its source framework prepared an image, in
the order the source did it:

* MatConvNet ([L] ``test_gallery_query_crazy.m``): ``imresize`` on the uint8
  image (rounded to uint8), ``single``, minus the RGB mean, no std.
* Caffe, D-X-Y ([DXY] ``extract_feature.py``/``units.py``): ``caffe.io.load_image``
  ([0, 1] float32 RGB) -> ``caffe.io.resize_image`` -> centre crop -> RGB->BGR
  -> x255 -> minus the BGR mean.

Images are decoded with Pillow; MATLAB's ``imread`` and skimage's reader may
use another libjpeg build, whose IDCT can differ by a grey level here and there.
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from porting.imresize import caffe_resize_image, imresize

__all__ = [
    "RESIZE_METHODS",
    "CROP_MODES",
    "MEAN_RESIZE_METHODS",
    "COLOURS",
    "MARKET_RGB_MEAN",
    "DXY_BGR_MEAN",
    "Preprocess",
    "load_rgb",
    "pil_to_rgb",
    "image_problem",
    "IMAGE_POLICY",
    "center_crop",
    "center_crop_offsets",
    "random_crop",
    "hflip",
    "to_bgr",
    "resize_mean",
    "subtract_mean",
    "market_matconvnet",
    "cuhk03_matconvnet",
    "caffe_dxy",
]

RESIZE_METHODS = (
    "matlab-bicubic",
    "matlab-bicubic-float",
    "caffe-bilinear",
    "pil-bilinear",
    "none",
)
CROP_MODES = ("center", "none")
MEAN_RESIZE_METHODS = ("matlab-bicubic-float", "caffe-bilinear", "none")
COLOURS = ("RGB", "BGR")

#: Market-1501 mean, RGB, 0-255 ([L] ``train_id_net_res_2stream.m`` averageImage).
MARKET_RGB_MEAN = (105.6920, 99.1345, 97.9152)
#: D-X-Y Caffe ``mean_value``, BGR, 0-255 ([DXY] train prototxts, extract_prediction.sh).
DXY_BGR_MEAN = (97.8286, 99.0468, 105.606)

ImageLike = np.ndarray | Image.Image | str | os.PathLike


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


#: What the image files of a data set are taken as, in the sources' terms (said in the
#: ``validate`` report). The format is recognised by content, not by the file's extension,
#: as MATLAB's ``imread`` and skimage do (a PNG named ``.jpg`` is read as the PNG it is).
IMAGE_POLICY = ("format by content (a PNG named .jpg is read as PNG, as imread does); grey "
                "replicated to RGB (caffe.io.load_image tiles it, the authors' MATLAB code "
                "subtracts the RGB mean from the grey plane: the same); alpha dropped (imread "
                "returns it apart); palette images as the colours they show; CMYK, more than "
                "8 bits per channel and images under 2x2 pixels refused by name")
_HIGH_DEPTH = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


def image_problem(pil: Image.Image) -> str | None:
    """Why an opened image is refused (:data:`IMAGE_POLICY`), from its header; None if it is
    read."""
    if pil.width < 2 or pil.height < 2:
        return (f"image size {pil.width}x{pil.height} is under 2x2 pixels: not a picture "
                "to describe")
    if pil.mode == "CMYK":
        return ("a CMYK image: MATLAB's imread returns its 4 ink planes and Caffe's loader "
                "does not convert them; convert it to RGB first")
    if pil.mode in _HIGH_DEPTH:
        return (f"mode {pil.mode}, more than 8 bits per channel: the sources read uint8 "
                "images; convert it to 8-bit RGB first")
    if pil.mode not in ("RGB", "RGBA", "RGBX", "L", "LA", "1", "P", "PA", "YCbCr"):
        return f"image mode {pil.mode!r} is not an RGB, grey or palette image"
    return None


def pil_to_rgb(pil: Image.Image, where: str | os.PathLike = "image") -> np.ndarray:
    """An opened image as uint8 HxWx3 RGB by :data:`IMAGE_POLICY`, or a ValueError naming
    ``where``."""
    problem = image_problem(pil)
    if problem:
        raise ValueError(f"{where}: {problem}")
    return np.asarray(pil.convert("RGB"), dtype=np.uint8).copy()


def load_rgb(image: ImageLike) -> np.ndarray:
    """Return ``image`` as a uint8 HxWx3 RGB array.

    Accepts a uint8 HxWx3 (or HxW grey, replicated to 3 channels) array, a PIL
    image (converted to RGB) or a path (decoded with Pillow by :data:`IMAGE_POLICY`).
    """
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, f"{path}: is a folder, not an image file")
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        try:
            with Image.open(path) as pil:
                problem = image_problem(pil)
                if problem:
                    raise ValueError(problem)
                return np.asarray(pil.convert("RGB"), dtype=np.uint8).copy()
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ValueError(f"cannot read image {path}: {exc}") from exc
    if isinstance(image, Image.Image):
        return pil_to_rgb(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"image array must be uint8 RGB, got dtype {image.dtype}")
        if image.ndim == 2:
            return np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image array must be HxWx3 (or HxW), got shape {image.shape}")
        return image
    raise TypeError(
        f"image must be a uint8 ndarray, a PIL image or a path, got {type(image).__name__}"
    )


def center_crop_offsets(in_size: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """Top-left offsets of Caffe's centre crop.

    Caffe (``Classifier.predict``, ``io.oversample``) takes
    ``int(H/2.0 - h/2.0)`` .. ``int(H/2.0 + h/2.0)``, i.e. ``floor((H - h)/2)``:
    256 -> 224 starts at 16, 256 -> 227 at 14.
    """
    (in_h, in_w), (h, w) = in_size, size
    if h > in_h or w > in_w or h < 1 or w < 1:
        raise ValueError(f"cannot crop {h}x{w} out of {in_h}x{in_w}")
    return int(in_h / 2.0 - h / 2.0), int(in_w / 2.0 - w / 2.0)


def center_crop(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre crop of an HxW[xC] array with Caffe's offsets (see ``center_crop_offsets``)."""
    top, left = center_crop_offsets(img.shape[:2], size)
    return img[top : top + size[0], left : left + size[1]]


def random_crop(
    img: np.ndarray,
    size: tuple[int, int],
    max_offset: int = 32,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Random crop as [L]'s training ``getBatch``: offsets uniform in 0..max_offset.

    MATLAB draws ``x1 = randi(33)`` (rows) then ``y1 = randi(33)`` (columns), so each
    0-based offset is uniform over 0..32 inclusive for a 256 -> 224 crop.
    """
    h, w = size
    if max_offset < 0:
        raise ValueError(f"max_offset must be >= 0, got {max_offset}")
    if img.shape[0] < h + max_offset or img.shape[1] < w + max_offset:
        raise ValueError(
            f"random_crop of {h}x{w} with offsets up to {max_offset} needs an image of at "
            f"least {h + max_offset}x{w + max_offset}, got {img.shape[0]}x{img.shape[1]}"
        )
    rng = np.random.default_rng() if rng is None else rng
    top = int(rng.integers(0, max_offset + 1))
    left = int(rng.integers(0, max_offset + 1))
    return img[top : top + h, left : left + w]


def hflip(img: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Horizontal flip: HxW[xC] ndarray (MATLAB ``fliplr``) or CxHxW tensor."""
    if isinstance(img, torch.Tensor):
        return torch.flip(img, dims=(-1,))
    return img[:, ::-1]


def to_bgr(img: np.ndarray) -> np.ndarray:
    """Swap an HxWx3 RGB array to BGR (Caffe ``channel_swap (2, 1, 0)``)."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"to_bgr expects an HxWx3 array, got shape {img.shape}")
    return img[:, :, ::-1]


def resize_mean(
    mean: Sequence[float] | np.ndarray, size: tuple[int, int], mean_resize: str
) -> np.ndarray:
    """Bring a mean to ``size``: a 3-vector stays a (1, 1, 3) array, an HxWx3 image
    is resized with ``mean_resize`` when its size differs (dtype preserved for
    ``matlab-bicubic-float``, float32 for ``caffe-bilinear``)."""
    arr = np.asarray(mean)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if arr.ndim == 1:
        if arr.shape != (3,):
            raise ValueError(f"mean must have 3 values, got shape {arr.shape}")
        return arr.reshape(1, 1, 3)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"mean image must be HxWx3, got shape {arr.shape}")
    if arr.shape[:2] == (1, 1) or arr.shape[:2] == tuple(size):
        return arr
    if mean_resize == "matlab-bicubic-float":
        return imresize(arr, tuple(size), "bicubic")
    if mean_resize == "caffe-bilinear":
        return caffe_resize_image(arr, tuple(size))
    if mean_resize == "none":
        raise ValueError(
            f"mean image is {arr.shape[0]}x{arr.shape[1]} but the input is "
            f"{size[0]}x{size[1]} and mean_resize is 'none'"
        )
    raise ValueError(f"mean_resize must be one of {MEAN_RESIZE_METHODS}, got {mean_resize!r}")


def subtract_mean(
    img: np.ndarray, mean: Sequence[float] | np.ndarray, mean_resize: str = "none"
) -> np.ndarray:
    """``img - mean`` for a float HxWx3 image; the result keeps ``img``'s dtype.

    ``mean`` is a 3-vector (broadcast like a 1x1x3 averageImage) or HxWx3 image
    resized per ``mean_resize`` if its size differs. The difference is formed in
    float64 and rounded once to ``img``'s dtype: pass a float32 mean for MATLAB
    (``single - single``), a float64 one for Caffe (``float32 -= float64``).
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"subtract_mean expects an HxWx3 image, got shape {img.shape}")
    m = resize_mean(mean, img.shape[:2], mean_resize)
    return (img.astype(np.float64) - m.astype(np.float64)).astype(img.dtype)


# ---------------------------------------------------------------------------
# The spec
# ---------------------------------------------------------------------------


def _fail(name: str, message: str) -> ValueError:
    return ValueError(f"Preprocess.{name}: {message}")


def _size(name: str, value: Any, optional: bool = False) -> tuple[int, int] | None:
    if value is None and optional:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence | np.ndarray):
        raise _fail(name, f"expected (height, width), got {value!r}")
    items = list(value)
    if len(items) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in items
    ):
        raise _fail(name, f"expected two positive integers, got {value!r}")
    return int(items[0]), int(items[1])


def _triple(name: str, value: Any) -> tuple[float, float, float]:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise _fail(name, f"expected 3 numbers, got {value!r}") from exc
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise _fail(name, f"expected 3 finite numbers, got {value!r}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def _choice(name: str, value: Any, options: Sequence[str]) -> str:
    if value not in options:
        raise _fail(name, f"must be one of {list(options)}, got {value!r}")
    return value


@dataclass(frozen=True, eq=False)
class Preprocess:
    """How a checkpoint's source framework turned an image into its input blob.

    ``input_size``: network input (H, W). ``resize``: resize target before
    cropping. ``resize_method``:

    * ``"matlab-bicubic"``: MATLAB ``imresize`` on uint8, rounded per pass (Market);
    * ``"matlab-bicubic-float"``: ``imresize`` on single to ``input_size``, no
      rounding; if ``resize`` is set the uint8 image is first ``imresize``-d to it
      and stored as single (CUHK03: ``single(imresize(u8,[256 256]))`` then
      ``imresize(.,[224 224])``), crop must be ``"none"``;
    * ``"caffe-bilinear"``: ``caffe.io.resize_image`` on the [0, 1] float image;
    * ``"pil-bilinear"``: Pillow bilinear on uint8; ``"none"``: no resize (with
      ``crop="none"`` the image keeps its own size, e.g. full-size Oxford5k retrieval).

    ``crop``: ``"center"`` (Caffe offsets) or ``"none"``. ``mean``: 3-vector or
    HxWx3 image in the network's colour order and value range; ``mean_resize``
    says how a mean image of another size is brought to ``input_size``.
    ``std``: optional divisor after mean subtraction. ``colour``: network channel
    order. ``value_range``: pixel scale of the input (255 = 0..255). ``flip``:
    the recipe also averages/adds a horizontally flipped pass (informational; use
    ``__call__(..., flip=True)`` to produce it). ``source``: free text.
    """

    input_size: tuple[int, int]
    resize: tuple[int, int] | None
    resize_method: str
    crop: str
    mean: tuple[float, float, float] | np.ndarray
    mean_resize: str = "matlab-bicubic-float"
    std: tuple[float, float, float] | None = None
    colour: str = "RGB"
    value_range: float = 255.0
    flip: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "input_size", _size("input_size", self.input_size))
        set_(self, "resize", _size("resize", self.resize, optional=True))
        set_(self, "resize_method", _choice("resize_method", self.resize_method, RESIZE_METHODS))
        set_(self, "crop", _choice("crop", self.crop, CROP_MODES))
        set_(self, "mean", self._check_mean(self.mean))
        set_(self, "mean_resize",
             _choice("mean_resize", self.mean_resize, MEAN_RESIZE_METHODS))
        if self.std is not None:
            std = _triple("std", self.std)
            if min(std) <= 0:
                raise _fail("std", f"must be positive, got {self.std!r}")
            set_(self, "std", std)
        set_(self, "colour", _choice("colour", self.colour, COLOURS))
        if (
            isinstance(self.value_range, bool)
            or not isinstance(self.value_range, (int, float, np.integer, np.floating))
            or not math.isfinite(self.value_range)
            or self.value_range <= 0
        ):
            raise _fail("value_range", f"must be a positive number, got {self.value_range!r}")
        set_(self, "value_range", float(self.value_range))
        if not isinstance(self.flip, (bool, np.bool_)):
            raise _fail("flip", f"must be a bool, got {self.flip!r}")
        set_(self, "flip", bool(self.flip))
        if not isinstance(self.source, str):
            raise _fail("source", f"must be a string, got {self.source!r}")
        self._check_consistency()

    @staticmethod
    def _check_mean(value: Any) -> tuple[float, float, float] | np.ndarray:
        try:
            arr = np.array(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise _fail("mean", f"expected 3 numbers or an HxWx3 array, got {value!r}") from exc
        if not np.all(np.isfinite(arr)):
            raise _fail("mean", "contains non-finite values")
        if arr.shape == (3,) or arr.shape == (1, 1, 3):
            flat = arr.reshape(3)
            return (float(flat[0]), float(flat[1]), float(flat[2]))
        if arr.ndim == 3 and arr.shape[2] == 3 and arr.shape[0] > 0 and arr.shape[1] > 0:
            arr.setflags(write=False)
            return arr
        raise _fail("mean", f"expected 3 numbers or an HxWx3 array, got shape {arr.shape}")

    def _check_consistency(self) -> None:
        method, resize, size = self.resize_method, self.resize, self.input_size
        if method == "none" and resize is not None:
            raise _fail("resize", "must be None when resize_method is 'none'")
        if method in ("matlab-bicubic", "caffe-bilinear", "pil-bilinear") and resize is None:
            raise _fail("resize", f"is required with resize_method {method!r}")
        if method == "matlab-bicubic-float" and self.crop != "none":
            raise _fail("crop", "must be 'none' with 'matlab-bicubic-float' (it resizes to "
                                "input_size)")
        if method != "matlab-bicubic-float" and resize is not None:
            if self.crop == "none" and resize != size:
                raise _fail("resize", f"{resize} differs from input_size {size} and crop is "
                                      "'none'")
            if self.crop == "center" and (resize[0] < size[0] or resize[1] < size[1]):
                raise _fail("resize", f"{resize} is smaller than input_size {size}")
        if isinstance(self.mean, np.ndarray) and self.mean_resize == "none":
            if self.mean.shape[:2] != size:
                raise _fail("mean", f"image is {self.mean.shape[:2]}, input_size is {size} "
                                    "and mean_resize is 'none'")

    # -- equality / hashing (the mean may be an array) --------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Preprocess):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.to_dict().items())))

    # -- serialisation ---------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (lists, floats, str, bool, None)."""
        mean = self.mean.tolist() if isinstance(self.mean, np.ndarray) else list(self.mean)
        return {
            "input_size": list(self.input_size),
            "resize": None if self.resize is None else list(self.resize),
            "resize_method": self.resize_method,
            "crop": self.crop,
            "mean": mean,
            "mean_resize": self.mean_resize,
            "std": None if self.std is None else list(self.std),
            "colour": self.colour,
            "value_range": self.value_range,
            "flip": self.flip,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocess:
        """Inverse of ``to_dict``; raises ``ValueError`` naming a bad/missing/unknown field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"Preprocess.from_dict expects a mapping, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"Preprocess: unknown field(s) {unknown}")
        missing = [n for n, f in known.items() if f.default is MISSING and n not in data]
        if missing:
            raise ValueError(f"Preprocess: missing required field(s) {missing}")
        return cls(**dict(data))

    # -- the pipeline ----------------------------------------------------------

    def __call__(self, image: ImageLike, *, flip: bool = False) -> torch.Tensor:
        """Preprocess one image into a (3, H, W) float32 tensor.

        ``flip=True`` applies the horizontal flip where the source recipe does:
        MatConvNet flips the resized image (``fliplr(oim)``), Caffe's
        ``oversample`` flips the crop; both before mean subtraction.
        """
        rgb = load_rgb(image)
        if self.resize_method == "caffe-bilinear":
            x = self._caffe(rgb, flip)
        else:
            x = self._matlab_like(rgb, flip)
        if self.std is not None:
            x = (x / np.asarray(self.std, dtype=np.float32)).astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))

    def _crop(self, img: np.ndarray) -> np.ndarray:
        if self.crop == "center":
            return center_crop(img, self.input_size)
        if self.resize_method == "none":
            return img  # no resize and no crop: the net takes the image at its own size
        if img.shape[:2] != self.input_size:
            raise ValueError(
                f"image is {img.shape[0]}x{img.shape[1]} after resizing but input_size is "
                f"{self.input_size} and crop is 'none'"
            )
        return img

    def _matlab_like(self, rgb: np.ndarray, flip: bool) -> np.ndarray:
        """uint8 resize (MATLAB/PIL) -> single -> [BGR] -> minus mean, in float32."""
        method = self.resize_method
        if method == "matlab-bicubic":
            img = imresize(rgb, self.resize, "bicubic")
        elif method == "matlab-bicubic-float":
            img = rgb if self.resize is None else imresize(rgb, self.resize, "bicubic")
            img = imresize(img.astype(np.float32), self.input_size, "bicubic")
        elif method == "pil-bilinear":
            pil = Image.fromarray(rgb).resize(
                (self.resize[1], self.resize[0]), Image.Resampling.BILINEAR
            )
            img = np.asarray(pil, dtype=np.uint8)
        else:
            img = rgb
        if flip:
            img = hflip(img)
        x = self._crop(img).astype(np.float32)
        if self.value_range != 255.0:
            x = x * np.float32(self.value_range / 255.0)
        if self.colour == "BGR":
            x = to_bgr(x)
        # MATLAB: single(im) - averageImage is evaluated in single precision.
        mean = self.mean
        if isinstance(mean, np.ndarray):
            mean = mean.astype(np.float32)
        else:
            mean = np.asarray(mean, dtype=np.float32)
        return subtract_mean(x, mean, self.mean_resize)

    def _caffe(self, rgb: np.ndarray, flip: bool) -> np.ndarray:
        """load_image -> resize_image -> centre crop -> BGR -> x raw_scale -> minus mean."""
        # skimage img_as_float: uint8 * (1/255) in float64; caffe casts to float32.
        x = np.multiply(rgb, 1.0 / 255, dtype=np.float64).astype(np.float32)
        x = caffe_resize_image(x, self.resize)
        x = self._crop(x)
        if flip:
            x = hflip(x)
        if self.colour == "BGR":
            x = to_bgr(x)
        x = x * np.float32(self.value_range)  # float32 *= python float stays float32
        # Transformer: caffe_in (float32) -= mean (float64 ndarray).
        return subtract_mean(x, self.mean, self.mean_resize)


# ---------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------


def market_matconvnet() -> Preprocess:
    """[L] ``test_gallery_query_crazy.m``: ``imresize(imread(p),[256 256])`` (uint8),
    ``single(.) - [105.6920 99.1345 97.9152]``, RGB, plus a ``fliplr`` pass."""
    return Preprocess(
        input_size=(256, 256),
        resize=(256, 256),
        resize_method="matlab-bicubic",
        crop="none",
        mean=MARKET_RGB_MEAN,
        mean_resize="matlab-bicubic-float",
        std=None,
        colour="RGB",
        value_range=255.0,
        flip=True,
        source="layumi/2016_person_re-ID test/test_gallery_query_crazy.m: "
        "imresize(imread(path),[256 256]) on uint8; single(im) - averageImage (RGB Market "
        "mean); feature of image + fliplr(image)",
    )


def cuhk03_matconvnet(mean_image: np.ndarray | Sequence[float] | None = None) -> Preprocess:
    """[L] ``cuhk03-prepare-eval``: ``single(imresize(u8,[256 256]))`` (prepare_test.m),
    then ``imresize(.,[224 224])`` on single and ``minus imresize(averageImage,[224 224])``;
    no flip. ``mean_image`` defaults to the Market mean set by the training script;
    pass the checkpoint's own ``averageImage`` when it differs."""
    return Preprocess(
        input_size=(224, 224),
        resize=(256, 256),
        resize_method="matlab-bicubic-float",
        crop="none",
        mean=MARKET_RGB_MEAN if mean_image is None else mean_image,
        mean_resize="matlab-bicubic-float",
        std=None,
        colour="RGB",
        value_range=255.0,
        flip=False,
        source="layumi/2016_person_re-ID cuhk03-prepare-eval/prepare_test.m + "
        "test_cuhk03_res.m: single(imresize(u8,[256 256])) -> imresize(.,[224 224]) -> "
        "minus imresize(averageImage,[224 224])",
    )


def caffe_dxy(crop_size: int = 224) -> Preprocess:
    """[DXY] ``extract_feature.py --center_only``: load_image, resize_image to 256,
    centre crop ``crop_size`` (224, or 227 for CaffeNet), BGR, x255, minus
    (97.8286, 99.0468, 105.606)."""
    if crop_size not in (224, 227):
        raise ValueError(f"caffe_dxy crop_size must be 224 or 227, got {crop_size}")
    return Preprocess(
        input_size=(crop_size, crop_size),
        resize=(256, 256),
        resize_method="caffe-bilinear",
        crop="center",
        mean=DXY_BGR_MEAN,
        mean_resize="caffe-bilinear",
        std=None,
        colour="BGR",
        value_range=255.0,
        flip=False,
        source="D-X-Y/caffe-reid examples/market1501/testing/extract_feature.py "
        "(--center_only): caffe.io.load_image, resize_image (256,256), centre crop, "
        "channel_swap 2,1,0, raw_scale 255, mean_value BGR. Without --center_only the saved "
        "feature is the mirrored centre crop (oversample with batch 1).",
    )
