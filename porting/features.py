"""A model's descriptor blob and the device it runs on: what extraction, the
:class:`~porting.feature_extractor.FeatureExtractor` and export share.

``feature_map`` knows the three kinds of model the project loads (the paper's two-stream net,
a converted graph, a canonical backbone); ``flip_commutes`` says when a flipped input may be
taken from the unflipped one without a second resize.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from porting.graph import GraphModule
from porting.preprocess import Preprocess

TF32_ENV = "REID_PORTING_TF32"


def float32_on_cuda() -> None:
    """Keep float32 convolutions and matmuls in float32 on CUDA.

    PyTorch lets cuDNN convolutions run in TF32 by default on Ampere and later GPUs (a 10-bit
    mantissa: about 1e-3 relative error, ten times ``compare``'s tolerance), so a faithful
    port turns it off where it runs; ``REID_PORTING_TF32=1`` keeps PyTorch's default.
    """
    if os.environ.get(TF32_ENV, "0") != "1":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; under torchrun CUDA is ``cuda:LOCAL_RANK``.
    A CUDA device runs float32 as float32 (:func:`float32_on_cuda`)."""
    if isinstance(device, torch.device):
        if device.type == "cuda":
            float32_on_cuda()
        return device
    if device not in ("auto", "cuda", "cpu") and not str(device).startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cuda', 'cuda:N' or 'cpu', got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' asked for but torch.cuda.is_available() is False")
    if device == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    if device.startswith("cuda"):
        float32_on_cuda()
    return torch.device(device)


def graph_feature_var(model: nn.Module, feature_var: str | None) -> str:
    """The converted graph's feature variable: the one asked for, else its checkpoint's."""
    if feature_var is not None:
        return feature_var
    meta = getattr(model, "checkpoint_meta", None) or {}
    var = meta.get("feature_var") if isinstance(meta, dict) else None
    if not var:
        raise ValueError(
            "this converted graph does not say which variable is the feature: its "
            "checkpoint_meta has no 'feature_var'; pass feature_var= (e.g. 'pool5' or 'fc7')")
    return str(var)


def feature_map(model: nn.Module, batch: torch.Tensor,
                feature_var: str | None = None) -> torch.Tensor:
    """The network's descriptor blob for a preprocessed batch: ``(N, C, H, W)`` or ``(N, C)``.

    * :class:`porting.models.SiameseReID`: ``model.features(batch)`` (the shared trunk);
    * a converted :class:`porting.graph.GraphModule`: the variable ``feature_var`` (default
      ``model.checkpoint_meta["feature_var"]``, e.g. ``pool5`` or ``fc7``) with ``batch`` fed
      to the one graph input it depends on (stream 1's ``data`` in a two-stream net);
    * a canonical backbone built with ``num_classes=None``: ``model(batch)``.
    """
    from porting.models import SiameseReID

    if isinstance(model, SiameseReID):
        return model.features(batch)
    if isinstance(model, GraphModule):
        var = graph_feature_var(model, feature_var)
        needed = [v for v in model.inputs if v in model.needed({var})]
        if len(needed) != 1:
            raise ValueError(f"{var!r} depends on {len(needed)} graph inputs {needed}; feature "
                             "extraction feeds one image batch")
        return model(**{needed[0]: batch}, outputs=[var])[var]
    for head in ("fc1000", "fc8"):
        if getattr(model, head, None) is not None:
            raise ValueError(
                f"{type(model).__name__} ends in its classifier ({head}); build it with "
                "num_classes=None to get the pool5/fc7 feature")
    return model(batch)


def flip_commutes(preprocess: Preprocess) -> bool:
    """True when ``preprocess(img, flip=True)`` equals ``flip(preprocess(img))`` bit for bit.

    That holds when the mean is a per-channel 3-vector (every later step is per pixel) and the
    flip is not followed by an off-centre crop: no crop, or Caffe's pipeline (which crops
    before flipping). Then the flipped input is taken from the first one instead of resizing
    the image twice.
    """
    if isinstance(preprocess.mean, np.ndarray):
        return False
    return preprocess.crop == "none" or preprocess.resize_method == "caffe-bilinear"
