"""VGG16 (``VGG_ILSVRC_16_layers``)."""

from __future__ import annotations

import torch
from torch import nn

from porting.layers.semantics import Semantics, get_semantics

_BLOCKS = (2, 2, 3, 3, 3)


class VGG16(nn.Module):
    """conv{1..5}_x (3x3, pad 1) with 2x2/2 max pooling, fc6 (7x7) to fc8; Caffe names.

    ``num_classes=None`` stops at fc7 (after relu7/drop7), the paper's embedding.
    """

    def __init__(
        self,
        semantics: str | Semantics = "caffe",
        num_classes: int | None = 1000,
        widths: tuple[int, int, int, int, int] = (64, 128, 256, 512, 512),
        fc_width: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        s = get_semantics(semantics)
        self.semantics = s.name
        cin = 3
        self.features: list[str] = []
        for stage, (n, width) in enumerate(zip(_BLOCKS, widths, strict=True), start=1):
            for i in range(1, n + 1):
                self.add_module(f"conv{stage}_{i}", s.conv(cin, width, 3, pad=1))
                self.add_module(f"relu{stage}_{i}", nn.ReLU())
                self.features += [f"conv{stage}_{i}", f"relu{stage}_{i}"]
                cin = width
            self.add_module(f"pool{stage}", s.max_pool(2, 2))
            self.features.append(f"pool{stage}")
        self.fc6 = s.fc(cin, fc_width, kernel=7)
        self.relu6 = nn.ReLU()
        self.drop6 = nn.Dropout(dropout)
        self.fc7 = s.fc(fc_width, fc_width)
        self.relu7 = nn.ReLU()
        self.drop7 = nn.Dropout(dropout)
        self.fc8 = s.fc(fc_width, num_classes) if num_classes else None
        self.out_channels = num_classes or fc_width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.features:
            x = getattr(self, name)(x)
        x = self.drop6(self.relu6(self.fc6(x)))
        x = self.drop7(self.relu7(self.fc7(x)))
        return x if self.fc8 is None else self.fc8(x)
