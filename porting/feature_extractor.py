"""``porting.FeatureExtractor``: images in, the checkpoint's own re-ID descriptors out.

A drop-in for torchreid's ``FeatureExtractor`` in re-ID code::

    from porting import FeatureExtractor
    extractor = FeatureExtractor("market_resnet52_2stream.pth")     # or model_path=...
    features = extractor(["a.jpg", "b.jpg"])                         # (2, C), unit rows

Each image goes through the checkpoint's :class:`~porting.preprocess.Preprocess` (resize,
mean, crop, colour order as the source framework did it); when the recipe flips, the image
itself is flipped by ``preprocess(image, flip=True)`` as the authors' scripts do; the
network's feature blob is pooled per the recipe (:func:`porting.recipes.pool_positions`),
the flipped descriptor added, and the sum L2-normalised.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from porting.graph import GraphModule
from porting.inference import set_exact
from porting.preprocess import Preprocess, pil_to_rgb
from porting.recipes import Recipe, get_recipe, l2_normalize, pool_positions

__all__ = ["FeatureExtractor"]

# PIL modes that need a choice to become RGB (alpha over what? which bit depth?).
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_HIGH_DEPTH_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


def _graph_feature_var(model: GraphModule, feature_var: str | None) -> str:
    meta = getattr(model, "checkpoint_meta", None) or {}
    var = feature_var or (meta.get("feature_var") if isinstance(meta, dict) else None)
    if not var:
        raise ValueError("this converted graph does not say which variable is the feature "
                         "(checkpoint meta 'feature_var'); pass feature_var= (e.g. 'pool5')")
    return str(var)


def _label(item: Any, index: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return f"{os.fspath(item)!r}"
    return f"#{index}"


def _rgb(item: Any, index: int) -> np.ndarray:
    """One image as a uint8 HxWx3 RGB array, or a ValueError/TypeError naming what it is."""
    where = _label(item, index)
    if isinstance(item, (str, os.PathLike)):
        if os.path.isdir(item):
            raise ValueError(f"FeatureExtractor: image {where} is a folder, not an image file "
                             "(pass its images, e.g. sorted(Path(folder).glob('*.jpg')))")
        if not os.path.isfile(item):
            raise FileNotFoundError(f"FeatureExtractor: image {where}: no such file")
        try:
            with Image.open(item) as pil:
                pil.load()
                return _rgb_from_pil(pil, where)
        except (OSError, ValueError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise ValueError(f"FeatureExtractor: image {where}: cannot read it ({exc})") \
                from None
    if isinstance(item, Image.Image):
        return _rgb_from_pil(item, where)
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8:
            raise ValueError(
                f"FeatureExtractor: image {where} is a {item.dtype} array of shape "
                f"{item.shape}; expected uint8 RGB values 0-255 (the checkpoint's own "
                "preprocessing does the scaling and mean subtraction)")
        if item.ndim == 2:
            return np.repeat(item[:, :, None], 3, axis=2)
        if item.ndim != 3 or item.shape[2] != 3:
            hint = {1: " (1 channel: pass it as HxW)", 2: " (grey + alpha?)",
                    4: " (RGBA? drop the alpha: arr[..., :3])"}
            extra = hint.get(item.shape[2], "") if item.ndim == 3 else ""
            raise ValueError(
                f"FeatureExtractor: image {where} is a uint8 array of shape {item.shape}"
                f"{extra}; expected HxWx3 RGB (or HxW grey)")
        return item
    if isinstance(item, torch.Tensor):
        raise TypeError(
            f"FeatureExtractor: image {where} is a torch.Tensor {tuple(item.shape)}; pass "
            "images (paths, PIL images or uint8 HxWx3 arrays): the checkpoint's own "
            "preprocessing is applied here")
    raise TypeError(f"FeatureExtractor: image {where} is a {type(item).__name__}; expected "
                    "a path, a PIL image or a uint8 HxWx3 array")


def _rgb_from_pil(pil: Image.Image, where: str) -> np.ndarray:
    if pil.mode in _ALPHA_MODES or (pil.mode == "P" and "transparency" in pil.info):
        raise ValueError(f"FeatureExtractor: image {where} is a PIL image in mode "
                         f"{pil.mode!r} (with alpha); convert it to RGB first "
                         "(img.convert('RGB') if the background does not matter)")
    if pil.mode in _HIGH_DEPTH_MODES:
        raise ValueError(f"FeatureExtractor: image {where} is a PIL image in mode "
                         f"{pil.mode!r} (more than 8 bits per channel); expected an 8-bit "
                         "RGB or grey image")
    return pil_to_rgb(pil, f"FeatureExtractor: image {where}")


class FeatureExtractor:
    """L2-normalised re-ID descriptors of images, the way the checkpoint's authors made them.

    ``checkpoint``: a reid-porting checkpoint path (``model_path=`` is accepted as an alias,
    as in torchreid) or a module returned by :func:`porting.load`. ``device``: ``"auto"``
    (CUDA when available), ``"cuda"``, ``"cuda:N"`` or ``"cpu"``. ``recipe``: a descriptor
    recipe name (default: the checkpoint's). ``batch_size``: images per forward pass.
    ``canonical`` / ``feature_var`` are passed to :func:`porting.load` /
    the feature lookup. ``exact``: ``True`` runs the source framework's arithmetic bit for bit,
    ``False`` the fast test-time forms (:mod:`porting.inference`); ``None`` (default): fast
    for a checkpoint path, a given module as it is.

    torchreid's ``model_name``, ``image_size``, ``pixel_mean``, ``pixel_std``,
    ``pixel_norm`` and ``verbose`` are accepted so that existing code runs unchanged, but the
    checkpoint carries its own preprocessing: ``image_size`` must equal its input size and a
    ``pixel_mean``/``pixel_std`` different from it is refused rather than silently used.

    Calling it on a list of image paths, PIL images or uint8 HxWx3 RGB arrays (or one of
    them, or an NxHxWx3 uint8 array) returns an ``(N, C)`` float32 CPU tensor with unit rows.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | nn.Module | None = None,
        device: str | torch.device = "auto",
        recipe: str | Recipe | None = None,
        batch_size: int = 32,
        *,
        model_path: str | os.PathLike | None = None,
        model_name: str | None = None,
        image_size: Sequence[int] | None = None,
        pixel_mean: Sequence[float] | None = None,
        pixel_std: Sequence[float] | None = None,
        pixel_norm: bool | None = None,
        verbose: bool = False,
        canonical: bool | None = None,
        feature_var: str | None = None,
        exact: bool | None = None,
    ) -> None:
        import porting
        from porting.features import resolve_device

        if checkpoint is not None and model_path is not None:
            raise ValueError("give either checkpoint or model_path, not both")
        source = checkpoint if checkpoint is not None else model_path
        if source is None or (isinstance(source, str) and not source):
            raise ValueError("FeatureExtractor needs a checkpoint (or model_path=)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.device = resolve_device(device)
        if isinstance(source, nn.Module):
            model = source if exact is None else set_exact(source, exact)
        else:
            model = porting.load(source, canonical=canonical, exact=bool(exact))
        spec = getattr(model, "preprocess_spec", None)
        if not spec:
            raise ValueError("the checkpoint carries no preprocessing spec; it cannot turn "
                             "images into inputs")
        self.preprocess = spec if isinstance(spec, Preprocess) else Preprocess.from_dict(spec)
        name = recipe if recipe is not None else getattr(model, "recipe", None)
        if name is None:
            raise ValueError("the checkpoint names no descriptor recipe; pass recipe=")
        self.recipe = name if isinstance(name, Recipe) else get_recipe(name)
        self._check_torchreid_args(image_size, pixel_mean, pixel_std, pixel_norm)
        from porting.features import flip_commutes

        self._flip_commutes = flip_commutes(self.preprocess)
        self.model_name = model_name
        self.model = model.to(self.device).eval()
        self.feature_var = feature_var
        self.batch_size = batch_size
        self.verbose = verbose
        if isinstance(model, GraphModule):  # fail now, not on the first images
            self.feature_var = _graph_feature_var(model, feature_var)

    def _check_torchreid_args(self, image_size, pixel_mean, pixel_std, pixel_norm) -> None:
        pre = self.preprocess
        if image_size is not None and tuple(int(v) for v in image_size) != pre.input_size:
            raise ValueError(f"image_size {tuple(image_size)} differs from the checkpoint's "
                             f"input size {pre.input_size}; its preprocessing is fixed")
        if pixel_mean is not None and (isinstance(pre.mean, np.ndarray) or not np.allclose(
                np.asarray(pixel_mean, dtype=np.float64), pre.mean)):
            raise ValueError(f"pixel_mean {list(pixel_mean)} differs from the checkpoint's "
                             f"own mean ({pre.colour}, 0-{pre.value_range:g}); leave it out")
        if pixel_std is not None and (pre.std is None or not np.allclose(
                np.asarray(pixel_std, dtype=np.float64), pre.std)):
            raise ValueError(f"pixel_std {list(pixel_std)} differs from the checkpoint's "
                             f"own ({pre.std}); leave it out")
        if pixel_norm is False:
            raise ValueError("pixel_norm=False: the checkpoint's preprocessing always "
                             "subtracts its mean; leave it out")

    def __repr__(self) -> str:
        return (f"FeatureExtractor({type(self.model).__name__}, recipe={self.recipe.name!r}, "
                f"input_size={self.preprocess.input_size}, device={str(self.device)!r})")

    @staticmethod
    def _items(images: Any) -> list[Any]:
        if isinstance(images, (str, os.PathLike, Image.Image)):
            return [images]
        if isinstance(images, np.ndarray):
            if images.ndim == 4 and images.dtype == np.uint8:
                return list(images)
            return [images]
        if isinstance(images, torch.Tensor):
            return [images]
        if isinstance(images, Sequence) or hasattr(images, "__iter__"):
            return list(images)
        return [images]

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        from porting.features import feature_map

        fmap = feature_map(self.model, batch.to(self.device), self.feature_var)
        return pool_positions(fmap.float(), self.recipe)

    def __call__(self, images: Any) -> torch.Tensor:
        items = self._items(images)
        out = []
        with torch.inference_mode():
            for start in range(0, len(items), self.batch_size):
                chunk = items[start : start + self.batch_size]
                rgbs = [_rgb(item, start + i) for i, item in enumerate(chunk)]
                x = torch.stack([self.preprocess(r) for r in rgbs])
                f = self._forward(x)
                if self.recipe.flip:
                    if self._flip_commutes:  # bit for bit the same, without a second resize
                        flipped = torch.flip(x, dims=[3])
                    else:
                        flipped = torch.stack([self.preprocess(r, flip=True) for r in rgbs])
                    f = f + self._forward(flipped)
                out.append(l2_normalize(f).float().cpu())
        if not out:
            return torch.empty(0, 0)
        return torch.cat(out)
