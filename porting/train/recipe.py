"""The training recipes (``matconvnet``, ``caffe-dxy``) and a run's configuration."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from porting.preprocess import DXY_BGR_MEAN, MARKET_RGB_MEAN
from porting.train.optim import (
    parse_schedule,
)

STAT_NAMES = ("objective", "objective_2", "objective_final", "top1err", "top1err_2",
              "top1err_compare")
CACHE_VERSION = 1
PLOT_INTERVAL_S = 60.0

@dataclass(frozen=True)
class TrainRecipe:
    """Everything the two recipes fix; see the module docstring for the sources."""

    name: str
    framework: str  # "matconvnet" | "caffe"
    arch: str
    batch_size: int
    iter_size: int = 1
    lr_schedule: tuple[float, ...] = ()  # MatConvNet: global rate per epoch
    base_lr: float = 0.0  # Caffe
    gamma: float = 0.1
    stepsize: int = 0
    max_iter: int = 0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    loss_weights: tuple[float, float, float] = (0.5, 0.5, 1.0)
    reduction: str = "sum"
    dropout: float = 0.9
    image_size: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = MARKET_RGB_MEAN
    colour: str = "RGB"
    resize: str = "matlab-bicubic"
    jpeg_quality: int = 75
    holdout: bool = True
    semantics: str = "matconvnet"
    source: str = ""
    losses: str = "I+V"  # which losses train: see LOSSES
    verification: str = "softmax"  # or "contrastive" (the paper's Sec. 4.2 comparison)
    contrastive_margin: float = 1.0

    @property
    def max_offset(self) -> int:
        return self.image_size - self.crop

    @property
    def epochs(self) -> int:
        return len(self.lr_schedule)


#: The variants of Table 2: which of the recipe's loss weights stay on. ``I+V`` is the paper's
#: model (MatConvNet 0.5 / 0.5 / 1); ``I`` trains the two identification losses alone
#: (the same two-stream batch, the verification weight 0), ``V`` the verification loss alone.
LOSSES = {"I+V": (1, 1, 1), "I": (1, 1, 0), "V": (0, 0, 1)}
#: The registry's model name (``porting.validation.published``) each variant should reach.
VARIANT_MODEL = {("I+V", "softmax"): "I+V", ("I", "softmax"): "I", ("V", "softmax"): "V",
                 ("I+V", "contrastive"): "contrastive"}


def get_train_recipe(name: str, arch: str) -> TrainRecipe:
    """The recipe ``name`` (``matconvnet``/``market-matconvnet`` or ``caffe-dxy``) for
    ``arch`` (``resnet50``, ``caffenet``, ``vgg16``)."""
    if arch not in ("resnet50", "caffenet", "vgg16"):
        raise ValueError(f"unknown arch {arch!r}; expected resnet50, caffenet or vgg16")
    crop = 227 if arch == "caffenet" else 224
    if name in ("matconvnet", "market-matconvnet"):
        epochs, batch = {"resnet50": (75, 48), "caffenet": (155, 128), "vgg16": (65, 48)}[arch]
        src = ("layumi/2016_person_re-ID train_id_net_res_2stream.m, resnet52_market.m, "
               "resnet52_2stream.m, prepare_data.m, examples/cnn_train_dag.m" if arch ==
               "resnet50" else "paper Sec. 3.6 (epochs, batch); rates, multipliers and data as "
               "the authors' ResNet-50 scripts (no CaffeNet/VGG16 code was released)")
        return TrainRecipe(
            name="matconvnet", framework="matconvnet", arch=arch, batch_size=batch,
            lr_schedule=tuple([0.1] * (epochs - 5) + [0.01] * 5), crop=crop, source=src)
    if name == "caffe-dxy":
        batch, iters = {"resnet50": (16, 4), "vgg16": (36, 3), "caffenet": (128, 1)}[arch]
        return TrainRecipe(
            name="caffe-dxy", framework="caffe", arch=arch, batch_size=batch, iter_size=iters,
            base_lr=0.001, gamma=0.1, stepsize=16000, max_iter=18000,
            loss_weights=(0.5, 0.5, 0.5), reduction="mean", dropout=0.0, crop=crop,
            mean=DXY_BGR_MEAN, colour="BGR", resize="opencv-bilinear", jpeg_quality=0,
            holdout=False, semantics="caffe",
            source=f"D-X-Y/caffe-reid (read via zhunzhong07/caffe-reid) models/market1501/"
                   f"generate_{arch}.py, python/caffe/model_libs.py, reid_data_layer.*, "
                   "solver.proto")
    raise ValueError(f"unknown recipe {name!r}; expected 'matconvnet' or 'caffe-dxy'")


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------



@dataclass
class TrainConfig:
    data_root: str
    out: str
    dataset: str = "market1501"
    arch: str = "resnet50"
    recipe: str = "matconvnet"
    init: str | None = None
    trunk_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    lr: str | None = None
    batch_size: int | None = None
    iter_size: int | None = None
    base_lr: float | None = None
    stepsize: int | None = None
    max_iter: int | None = None
    dropout: float | None = None
    image_size: int | None = None
    crop: int | None = None
    jpeg_quality: int | None = None
    holdout: str = "auto"
    split_seed: int = 0
    cuhk03_split: int = 6
    dividor_rule: str = "paper"
    backbone_lr: tuple[float, float] = (0.001, 0.02)
    fc751_lr: tuple[float, float] = (0.01, 0.2)
    fc9_lr: tuple[float, float] = (0.01, 0.2)
    seed: int = 0
    device: str = "auto"
    resume: str = "auto"
    eval_every: int = 0
    eval_split: str = "auto"
    workers: int = 0
    cache_dir: str | None = None
    keep_last: int = 0
    checkpoint_format: str = "pth"  # or "safetensors" (porting.checkpoint_safetensors)
    log_pairs: bool = False
    quiet: bool = False
    verbose: bool = False  # validate's full report after every evaluation, not only the last
    losses: str = "I+V"
    verification: str = "softmax"
    contrastive_margin: float = 1.0


def recipe_from(cfg: TrainConfig) -> TrainRecipe:
    r = get_train_recipe(cfg.recipe, cfg.arch)
    upd: dict[str, Any] = {}
    if cfg.lr is not None:
        upd["lr_schedule"] = tuple(parse_schedule(cfg.lr))
    if cfg.epochs is not None and r.framework == "matconvnet":
        sched = list(upd.get("lr_schedule", r.lr_schedule))
        # MatConvNet: learningRate(min(epoch, numel)); fewer epochs cut the schedule
        sched = sched[:cfg.epochs] + [sched[-1]] * max(0, cfg.epochs - len(sched))
        upd["lr_schedule"] = tuple(sched)
    for name in ("batch_size", "iter_size", "base_lr", "stepsize", "max_iter", "dropout",
                 "image_size", "crop", "jpeg_quality"):
        v = getattr(cfg, name)
        if v is not None:
            upd[name] = v
    if cfg.holdout != "auto":
        upd["holdout"] = cfg.holdout == "matconvnet"
    if cfg.losses not in LOSSES:
        raise ValueError(f"--losses must be one of {list(LOSSES)}, got {cfg.losses!r}")
    if (cfg.losses, cfg.verification) not in VARIANT_MODEL:
        raise ValueError(f"--losses {cfg.losses} with --verification {cfg.verification} is not "
                         f"a variant of the paper; known: {sorted(VARIANT_MODEL)}")
    if not cfg.contrastive_margin > 0:
        raise ValueError(f"--contrastive-margin must be positive, got {cfg.contrastive_margin}")
    upd["loss_weights"] = tuple(w * k for w, k in zip(r.loss_weights, LOSSES[cfg.losses],
                                                      strict=True))
    upd.update(losses=cfg.losses, verification=cfg.verification,
               contrastive_margin=float(cfg.contrastive_margin))
    r = replace(r, **upd)
    if r.crop > r.image_size:
        raise ValueError(f"crop {r.crop} is larger than the image size {r.image_size}")
    if r.framework == "caffe" and cfg.epochs is not None:
        raise ValueError("caffe-dxy counts iterations: use --max-iter, not --epochs")
    return r


