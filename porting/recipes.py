"""Test-time descriptors: how the authors turn a backbone's output into a re-ID feature.

Each recipe is named after the script it reproduces; the image-side steps (resize, mean,
crop) live in :mod:`porting.preprocess`, these are the tensor-side ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from porting.layers import MatConvNetLRN


@dataclass(frozen=True)
class Recipe:
    """A descriptor recipe: which blob, how positions are pooled, flip and normalisation."""

    name: str
    position_l2: bool  # L2 over channels at each position before the spatial sum
    flip: bool  # add the descriptor of the horizontally flipped input
    l2: bool  # final L2 normalisation
    source: str
    pool: str = "sum"  # how positions are combined: "sum" or "max" (MAC)
    # which input the descriptor is taken from: "image", or "mirror" = the horizontally
    # flipped input only (D-X-Y's extract_feature.py without --center_only, see below)
    view: str = "image"

    def __post_init__(self) -> None:
        if self.view not in ("image", "mirror"):
            raise ValueError(f"recipe {self.name}: view must be 'image' or 'mirror'")
        if self.view == "mirror" and self.flip:
            raise ValueError(f"recipe {self.name}: a mirror-only view has no flip to add")


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "market-matconvnet",
            position_l2=True,
            flip=True,
            l2=True,
            source="test/test_gallery_query_crazy.m: pool5 -> dagnn.LRN([4096 0 1 0.5]) -> "
            "sum over positions, + the same for fliplr(image), then L2",
        ),
        Recipe(
            "market-matconvnet-v1",
            position_l2=False,
            flip=False,
            l2=True,
            source="test/test_gallery_res.m + test_query_res.m at v1.0 (commit 4b7d7d8), the "
            "code behind the paper's ResNet-50 figures: imresize(imread(p),[224 224]) (uint8), "
            "single(.) - averageImage, raw pool5 (1x1), no flip, no LRN, L2",
        ),
        Recipe(
            "cuhk03-matconvnet",
            position_l2=False,
            flip=False,
            l2=True,
            source="cuhk03-prepare-eval/test_cuhk03_res.m: raw pool5 at 224 (1x1), L2",
        ),
        Recipe(
            "caffe-dxy",
            position_l2=False,
            flip=False,
            l2=True,
            source="D-X-Y caffe-reid extract_feature.py: fc7 (CaffeNet/VGG16) or pool5 "
            "(ResNet-50) of the centre crop; L2 here so squared Euclidean ranks as cosine",
        ),
        Recipe(
            "caffe-dxy-oversample",
            position_l2=False,
            flip=False,
            l2=False,
            view="mirror",
            source="D-X-Y caffe-reid extract_feature.py as extract_prediction.sh runs it (no "
            "--center_only): caffe.io.oversample gives 10 crops, the net's batch is 1, so the "
            "saved blob is the LAST crop's, the mirrored centre crop; fc7 / pool5 saved raw "
            "(evaluation.m ranks by cosine, or squared Euclidean for the '[Euclidean]' rows)",
        ),
        Recipe(
            "mac",
            position_l2=False,
            flip=False,
            l2=True,
            pool="max",
            source="paper §4.3 (Oxford5k): the last convolutional map of the full-size image, "
            "global max (MAC) instead of the last pooling, L2",
        ),
        Recipe(
            "pool5-l2",
            position_l2=False,
            flip=False,
            l2=True,
            source="plain baseline: the backbone output summed over positions, L2",
        ),
    )
}

_L2_LRN = MatConvNetLRN((4096, 0.0, 1.0, 0.5))


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {sorted(RECIPES)}")
    return RECIPES[name]


def l2_normalize(f: torch.Tensor) -> torch.Tensor:
    """``f ./ sqrt(sum(f.^2, 2))`` as the authors' MATLAB does it: no epsilon."""
    return f / torch.sqrt((f * f).sum(dim=1, keepdim=True))


def pool_positions(fmap: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """Backbone output ``(N, C[, H, W])`` to ``(N, C)`` per the recipe, before flip and L2."""
    if fmap.dim() == 2:
        return fmap
    if recipe.position_l2:
        if fmap.shape[1] > 2048:
            raise ValueError("the LRN-as-L2 trick [4096 0 1 0.5] needs at most 2048 channels")
        fmap = _L2_LRN(fmap)
    if recipe.pool == "max":
        return fmap.amax(dim=(2, 3))
    return fmap.sum(dim=(2, 3))
