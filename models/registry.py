"""Build the canonical models from a JSON-able spec (what a checkpoint stores)."""

from __future__ import annotations

from typing import Any

from torch import nn

from porting.models.caffenet import CaffeNet
from porting.models.resnet import ResNet50
from porting.models.siamese import SiameseReID
from porting.models.vgg import VGG16

BACKBONES: dict[str, type[nn.Module]] = {
    "caffenet": CaffeNet,
    "vgg16": VGG16,
    "resnet50": ResNet50,
}


def build_model(spec: dict[str, Any]) -> nn.Module:
    """``{"name": "resnet50", "kwargs": {...}}`` or ``{"name": "siamese", "trunk": {...},
    "kwargs": {"feat_dim": ..., "num_ids": ..., "dropout": ...}}``."""
    name = spec.get("name")
    kwargs = dict(spec.get("kwargs", {}))
    for key in ("widths",):
        if key in kwargs and isinstance(kwargs[key], list):
            kwargs[key] = tuple(kwargs[key])
    if name == "siamese":
        if "trunk" not in spec:
            raise ValueError("a 'siamese' model spec needs a 'trunk' spec")
        return SiameseReID(build_model(spec["trunk"]), **kwargs)
    if name not in BACKBONES:
        known = sorted(BACKBONES) + ["siamese"]
        raise ValueError(f"unknown architecture {name!r}; known: {known}")
    return BACKBONES[name](**kwargs)
