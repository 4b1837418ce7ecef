"""CaffeNet (``bvlc_reference_caffenet``), the paper's smallest backbone."""

from __future__ import annotations

import torch
from torch import nn

from porting.layers.semantics import Semantics, get_semantics


class CaffeNet(nn.Module):
    """conv1-5 with pooling *before* LRN (the CaffeNet order), fc6-fc8.

    Layer names are Caffe's. ``widths`` are conv1..conv5 outputs, ``fc_width`` fc6/fc7;
    ``num_classes=None`` stops at fc7 (after relu7/drop7), the embedding of the paper.
    """

    def __init__(
        self,
        semantics: str | Semantics = "caffe",
        num_classes: int | None = 1000,
        widths: tuple[int, int, int, int, int] = (96, 256, 384, 384, 256),
        fc_width: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        s = get_semantics(semantics)
        self.semantics = s.name
        c1, c2, c3, c4, c5 = widths
        self.conv1 = s.conv(3, c1, 11, stride=4)
        self.relu1 = nn.ReLU()
        self.pool1 = s.max_pool(3, 2)
        self.norm1 = s.lrn(5, 1e-4, 0.75)
        self.conv2 = s.conv(c1, c2, 5, pad=2, groups=2)
        self.relu2 = nn.ReLU()
        self.pool2 = s.max_pool(3, 2)
        self.norm2 = s.lrn(5, 1e-4, 0.75)
        self.conv3 = s.conv(c2, c3, 3, pad=1)
        self.relu3 = nn.ReLU()
        self.conv4 = s.conv(c3, c4, 3, pad=1, groups=2)
        self.relu4 = nn.ReLU()
        self.conv5 = s.conv(c4, c5, 3, pad=1, groups=2)
        self.relu5 = nn.ReLU()
        self.pool5 = s.max_pool(3, 2)
        self.fc6 = s.fc(c5, fc_width, kernel=6)
        self.relu6 = nn.ReLU()
        self.drop6 = nn.Dropout(dropout)
        self.fc7 = s.fc(fc_width, fc_width)
        self.relu7 = nn.ReLU()
        self.drop7 = nn.Dropout(dropout)
        self.fc8 = s.fc(fc_width, num_classes) if num_classes else None
        self.out_channels = num_classes or fc_width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(self.pool1(self.relu1(self.conv1(x))))
        x = self.norm2(self.pool2(self.relu2(self.conv2(x))))
        x = self.relu3(self.conv3(x))
        x = self.relu4(self.conv4(x))
        x = self.pool5(self.relu5(self.conv5(x)))
        x = self.drop6(self.relu6(self.fc6(x)))
        x = self.drop7(self.relu7(self.fc7(x)))
        return x if self.fc8 is None else self.fc8(x)
