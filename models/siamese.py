"""The paper's two-stream network: identification + verification (Fig. 2 of the paper)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from porting.layers import MatConvNetConv2d, Square, softmax_log_loss
from porting.recipes import get_recipe, l2_normalize, pool_positions


class SiameseOutput(NamedTuple):
    """Logit maps ``(N, C, H, W)`` of stream 1, stream 2 and the verification head."""

    prediction: torch.Tensor
    prediction_2: torch.Tensor
    dist_prediction: torch.Tensor


class SiameseLoss(NamedTuple):
    total: torch.Tensor
    objective: torch.Tensor
    objective_2: torch.Tensor
    objective_final: torch.Tensor


#: The verification heads: the paper's 2-way softmax over fc9 of the squared difference, or
#: the contrastive loss it compares with in Sec. 4.2.
VERIFICATION = ("softmax", "contrastive")


def pair_distance(f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    """Euclidean distance ``(N, 1, 1, 1)`` of the spatially summed, L2-normalised feature maps
    (the test-time descriptor without the flip): what the contrastive variant compares."""
    d1 = l2_normalize(f1.sum(dim=(2, 3)))
    d2 = l2_normalize(f2.sum(dim=(2, 3)))
    return (d1 - d2).pow(2).sum(dim=1).clamp_min(1e-12).sqrt()[:, None, None, None]


def contrastive_loss(distance: torch.Tensor, same: torch.Tensor, margin: float,
                     reduction: str) -> torch.Tensor:
    """Hadsell, Chopra & LeCun's contrastive loss, ``y d^2 + (1 - y) max(0, m - d)^2`` per
    pair with ``y = 1`` for the same identity (``same == 0``), summed (MatConvNet) or averaged
    (Caffe) over the pairs. The paper names the loss but not its margin or placement; here it
    acts on :func:`pair_distance` with margin ``m`` (1 by default: descriptors are unit
    vectors, so distances lie in [0, 2])."""
    d = distance.reshape(-1)
    y = (same.reshape(-1) == 0).to(d.dtype)
    per = y * d * d + (1 - y) * torch.clamp(margin - d, min=0) ** 2
    return per.sum() if reduction == "sum" else per.mean()


class SiameseReID(nn.Module):
    """Two streams sharing ONE trunk, as in the released ``net-epoch-75.mat``.

    Module names follow that file: ``dropout`` + ``fc751`` (1x1 conv to ``num_ids``; the
    authors keep the name for CUHK03's 1367 ids), the Square layer, ``dropout_D`` + ``fc9``
    (1x1 conv to 2: same / different). Heads are 1x1 convolutions so that a 256x256 input,
    whose ResNet-50 pool5 is 2x2, gives logit maps exactly as MatConvNet computes them.
    """

    def __init__(self, trunk: nn.Module, feat_dim: int, num_ids: int = 751,
                 dropout: float = 0.9, verification: str = "softmax",
                 margin: float = 1.0) -> None:
        super().__init__()
        if verification not in VERIFICATION:
            raise ValueError(f"verification must be one of {VERIFICATION}, got {verification!r}")
        self.verification, self.margin = verification, float(margin)
        self.trunk = trunk
        self.dropout = nn.Dropout(dropout)
        self.fc751 = MatConvNetConv2d(feat_dim, num_ids, 1)
        self.square = Square()
        self.dropout_D = nn.Dropout(dropout)
        self.fc9 = MatConvNetConv2d(feat_dim, 2, 1)
        self.feat_dim = feat_dim
        self.num_ids = num_ids

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk output as a map ``(N, C, H, W)`` (pool5, or fc7 as 1x1)."""
        f = self.trunk(x)
        return f[:, :, None, None] if f.dim() == 2 else f

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> SiameseOutput:
        f1, f2 = self.features(x1), self.features(x2)
        if self.verification == "contrastive":  # the distance takes the place of fc9's map
            verif = pair_distance(f1, f2)
        else:
            verif = self.fc9(self.dropout_D(self.square(f1, f2)))
        return SiameseOutput(self.fc751(self.dropout(f1)), self.fc751(self.dropout(f2)), verif)

    @staticmethod
    def loss(
        out: SiameseOutput,
        label: torch.Tensor,
        label_2: torch.Tensor,
        same: torch.Tensor,
        weights: tuple[float, float, float] = (0.5, 0.5, 1.0),
        reduction: str = "sum",
        verification: str = "softmax",
        margin: float = 1.0,
    ) -> SiameseLoss:
        """Weighted identification + identification + verification losses.

        Labels are 0-based; ``same`` is the verification class (0 = same, 1 = different,
        i.e. MatConvNet's ``label_f`` minus one). ``reduction="sum"`` is MatConvNet's Loss
        (the authors' recipe), ``"mean"`` Caffe's SoftmaxWithLoss. With
        ``verification="contrastive"`` the third output is a distance and the verification
        loss is :func:`contrastive_loss`.
        """
        o1 = softmax_log_loss(out.prediction, label, reduction)
        o2 = softmax_log_loss(out.prediction_2, label_2, reduction)
        if verification == "contrastive":
            ov = contrastive_loss(out.dist_prediction, same, margin, reduction)
        else:
            ov = softmax_log_loss(out.dist_prediction, same, reduction)
        total = weights[0] * o1 + weights[1] * o2 + weights[2] * ov
        return SiameseLoss(total, o1, o2, ov)

    @torch.no_grad()
    def embed(self, x: torch.Tensor, recipe: str = "market-matconvnet") -> torch.Tensor:
        """Test-time descriptor ``(N, C)`` of a preprocessed batch under a named recipe.

        A recipe with a flip adds the descriptor of ``x`` flipped left-right; that equals
        flipping the image before mean subtraction only for a per-channel mean (the Market
        recipe's), which :mod:`porting.validation` takes care of for full mean images.
        """
        r = get_recipe(recipe)
        f = pool_positions(self.features(x), r)
        if r.flip:
            f = f + pool_positions(self.features(torch.flip(x, dims=[3])), r)
        return l2_normalize(f) if r.l2 else f
