"""The trained model: backbone (random, or a converted checkpoint's), heads and their
initialisation, and the test-time preprocessing of the result."""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import nn

from porting.checkpoint import load_checkpoint
from porting.preprocess import Preprocess
from porting.train.optim import (
    freeze_caffe_batchnorm,
)
from porting.train.recipe import TrainRecipe


def _check_trunk_kwargs(arch: str, kw: dict[str, Any]) -> None:
    """Refuse keyword arguments the backbone's constructor does not take, naming them."""
    import inspect

    from porting.models import BACKBONES

    if arch not in BACKBONES:
        raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(BACKBONES)}")
    accepted = set(inspect.signature(BACKBONES[arch]).parameters)
    unknown = sorted(set(kw) - accepted)
    if unknown:
        takes = sorted(accepted - {"semantics", "num_classes"})
        raise ValueError(f"--trunk-kwargs: {', '.join(unknown)} not accepted by --arch {arch} "
                         f"(it takes {', '.join(takes)})")


def trunk_spec(arch: str, semantics: str, trunk_kwargs: dict[str, Any] | None = None
               ) -> tuple[dict[str, Any], int]:
    """Spec of a backbone without its classifier, and its feature width."""
    kw = dict(trunk_kwargs or {})
    _check_trunk_kwargs(arch, kw)
    kw.update({"semantics": semantics, "num_classes": None})
    if arch == "resnet50":
        feat = 32 * int(kw.get("width", 64))
    elif arch in ("caffenet", "vgg16"):
        feat = int(kw.get("fc_width", 4096))
        if "widths" in kw:
            kw["widths"] = list(kw["widths"])
    else:
        raise ValueError(f"unknown arch {arch!r}")
    return {"name": arch, "kwargs": kw}, feat


def _runs_at(trunk: nn.Module, size: int) -> bool:
    try:
        with torch.no_grad():
            trunk(torch.empty(1, 3, size, size, device="meta"))
    except (RuntimeError, ValueError):
        return False
    return True


def smallest_input(spec: dict[str, Any], limit: int = 4096) -> int | None:
    """The smallest square input the backbone ``spec`` accepts (computed by running it on
    the ``meta`` device: shapes only, no memory, no arithmetic); None if none up to
    ``limit``."""
    from porting.models import build_model

    with torch.device("meta"):
        trunk = build_model(spec)
    high = 1
    while not _runs_at(trunk, high):
        if high >= limit:
            return None
        high = min(2 * high, limit)
    low = high // 2  # fails (or 0); high runs: bisect
    while high - low > 1:
        mid = (low + high) // 2
        if _runs_at(trunk, mid):
            high = mid
        else:
            low = mid
    return high


def check_crop(spec: dict[str, Any], crop: int) -> None:
    """Refuse a training crop the backbone cannot take, naming ``--crop`` and the smallest
    size it accepts, before any image is resized."""
    from porting.models import build_model

    with torch.device("meta"):
        trunk = build_model(spec)
    if _runs_at(trunk, crop):
        return
    least = smallest_input(spec)
    arch = spec.get("name", "the backbone")
    raise ValueError(f"--crop {crop} is too small for --arch {arch}: it needs at least "
                     f"{least}x{least}" if least else
                     f"--crop {crop}: --arch {arch} accepts no square input up to 4096")


def _init_conv_matconvnet(conv: nn.Conv2d, gen: torch.Generator, scale: float = 1.0) -> None:
    # initParams.m: sc = sqrt(3/(h*w*in)); (rand*2-1)*sc; biases zero; "in" = size(3) =
    # input channels per group.
    fan_in = conv.weight.shape[1] * conv.weight.shape[2] * conv.weight.shape[3]
    sc = math.sqrt(3.0 / fan_in)
    with torch.no_grad():
        conv.weight.copy_((torch.rand(conv.weight.shape, generator=gen) * 2 - 1) * sc * scale)
        if conv.bias is not None:
            conv.bias.zero_()


def init_random_trunk(trunk: nn.Module, framework: str, gen: torch.Generator) -> None:
    """Random backbone (no ImageNet checkpoint): not the paper's recipe, for tests and ablations.

    Convolutions as the sources initialise new layers: MatConvNet's bundled ``initParams.m``
    ``U(-1,1)*sqrt(3/(h*w*in))`` and Caffe's ``xavier`` (D-X-Y's conv layers, the same
    distribution); D-X-Y's fully connected layers ``gaussian std 0.01``. BatchNorm: unit
    scale, zero shift, moments ``[0, 1]`` (``initParams.m`` would give zero moments, i.e.
    ``sigma = 0``, used in test mode).
    """
    from porting.layers import InnerProduct

    for mod in trunk.modules():
        if isinstance(mod, InnerProduct):
            with torch.no_grad():
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * 0.01)
                mod.bias.zero_()
        elif isinstance(mod, nn.Conv2d):
            _init_conv_matconvnet(mod, gen)


def init_heads(model: nn.Module, framework: str, gen: torch.Generator) -> None:
    """``fc751`` and ``fc9`` as the sources initialise them.

    MatConvNet (``initParams.m``): a new dagnn.Conv followed by a Loss layer gets
    ``U(-1,1)*sqrt(3/(h*w*in)) * 0.1`` and zero bias (both heads are). Caffe (D-X-Y
    ``fc_relu(.., is_train=True)``): ``gaussian std 0.01``, bias ``constant 0``.
    """
    for conv in (model.fc751, model.fc9):
        if framework == "matconvnet":
            _init_conv_matconvnet(conv, gen, scale=0.1)
        else:
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.01)
                conv.bias.zero_()


def backbone_from_checkpoint(path: str | os.PathLike, arch: str, semantics: str
                             ) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """The backbone of any checkpoint the converters produce: ``(trunk spec, state_dict,
    description)``.

    Loaded as ``porting.load(path, canonical=True)`` does; an ImageNet model loses its
    classifier (``fc1000``/``fc8``: ``resnet52_market.m`` removes ``fc1000`` and ``prob``),
    a two-stream model gives its shared trunk. Heads are always re-initialised.
    """
    from porting.loading import model_from_checkpoint
    from porting.models import SiameseReID

    ckpt = load_checkpoint(path)
    arch_spec = ckpt.get("arch")
    if arch_spec is None:
        raise ValueError(f"{path}: the checkpoint has no canonical architecture ('arch'); "
                         "convert it with --arch auto")
    model = model_from_checkpoint(ckpt, canonical=True)
    if isinstance(model, SiameseReID):
        spec = dict(arch_spec["trunk"])
        sd = {k: v for k, v in model.trunk.state_dict().items()}
        what = "trunk of a two-stream checkpoint"
    else:
        spec = {"name": arch_spec["name"], "kwargs": dict(arch_spec.get("kwargs", {}))}
        spec["kwargs"]["num_classes"] = None
        sd = {k: v for k, v in model.state_dict().items()
              if not k.startswith(("fc1000.", "fc8."))}
        what = "backbone without its classifier (fc1000/fc8)"
    if spec["name"] != arch:
        raise ValueError(f"{path}: holds a {spec['name']}, but --arch is {arch}")
    sem = spec["kwargs"].get("semantics")
    if sem != semantics:
        raise ValueError(
            f"{path}: a {sem}-semantics {arch}, but this recipe trains the {semantics} layers "
            f"(convert the {'MatConvNet .mat' if semantics == 'matconvnet' else 'caffemodel'} "
            "starting point instead, or pick the other --recipe)")
    return spec, sd, f"{what} from {path}"


def build_model_for(recipe: TrainRecipe, num_ids: int, *, init: str | None = None,
                    trunk_kwargs: dict[str, Any] | None = None, seed: int = 0,
                    dropout: float | None = None) -> tuple[nn.Module, dict[str, Any], str]:
    """The :class:`~porting.models.SiameseReID` to train, its arch spec and where its trunk
    came from."""
    from porting.models import build_model

    gen = torch.Generator().manual_seed(int(seed))
    if init:
        tspec, tsd, how = backbone_from_checkpoint(init, recipe.arch, recipe.semantics)
        if trunk_kwargs:
            raise ValueError("--trunk-kwargs/--width apply to a random backbone, not to --init")
    else:
        tspec, _ = trunk_spec(recipe.arch, recipe.semantics, trunk_kwargs)
        tsd, how = None, "random backbone (no --init): not the paper's ImageNet start"
    _, feat = trunk_spec(recipe.arch, recipe.semantics, tspec["kwargs"])
    spec = {"name": "siamese", "trunk": tspec,
            "kwargs": {"feat_dim": feat, "num_ids": int(num_ids),
                       "dropout": float(recipe.dropout if dropout is None else dropout),
                       "verification": recipe.verification,
                       "margin": float(recipe.contrastive_margin)}}
    model = build_model(spec)
    if tsd is not None:
        missing, unexpected = model.trunk.load_state_dict(tsd, strict=False)
        if missing or unexpected:
            raise ValueError(f"backbone weights do not fit: missing {missing[:4]}, "
                             f"unexpected {unexpected[:4]}")
    else:
        init_random_trunk(model.trunk, recipe.framework, gen)
    init_heads(model, recipe.framework, gen)
    if recipe.framework == "caffe":
        freeze_caffe_batchnorm(model)
    return model, spec, how


def eval_preprocess(recipe: TrainRecipe) -> tuple[Preprocess, str]:
    """The checkpoint's test-time preprocessing and descriptor recipe.

    ResNet-50 (MatConvNet): the authors' ``test_gallery_query_crazy.m`` (256x256, flip,
    per-position L2; :func:`porting.preprocess.market_matconvnet`). CaffeNet/VGG16
    (MatConvNet): no test code was released; 256 resize then the centre crop of the training
    size, fc7, L2 (``pool5-l2``). D-X-Y: ``extract_feature.py --center_only``
    (:func:`porting.preprocess.caffe_dxy`).
    """
    from porting.preprocess import caffe_dxy, market_matconvnet

    if recipe.framework == "caffe":
        return caffe_dxy(recipe.crop), "caffe-dxy"
    if recipe.arch == "resnet50":
        return market_matconvnet(), "market-matconvnet"
    pre = Preprocess(
        input_size=(recipe.crop, recipe.crop), resize=(recipe.image_size, recipe.image_size),
        resize_method="matlab-bicubic", crop="center", mean=recipe.mean, colour="RGB",
        value_range=255.0, flip=False,
        source=f"porting.train ({recipe.arch}, MatConvNet recipe): imresize to "
               f"{recipe.image_size} on uint8, centre {recipe.crop} crop (the training crop "
               "size), minus the Market mean; the authors released no test code for it")
    return pre, "pool5-l2"


# --------------------------------------------------------------------------------------------
# Distributed helpers
# --------------------------------------------------------------------------------------------


