"""Kaiming He's Caffe ResNet-50 (``ResNet-50-deploy.prototxt``), not torchvision's.

Differences from torchvision that change the numbers: conv1 has a bias; the stride of a
down-sampling block sits on the 1x1 ``branch2a`` and on ``branch1``; ``pool1`` is 3x3/2
without padding in Caffe's CEIL mode; ``pool5`` is a 7x7/1 average (2x2 at a 256 input).
"""

from __future__ import annotations

import torch
from torch import nn

from porting.layers.batchnorm import conv_bn
from porting.layers.semantics import Semantics, get_semantics

_STAGES = ((2, 3, 1), (3, 4, 2), (4, 6, 2), (5, 3, 2))  # (stage, blocks, stride)


class Bottleneck(nn.Module):
    """Block ``res{S}{b}``: submodules carry the Caffe layer names minus the block prefix
    (``branch2a`` is ``res2a_branch2a``, ``bn_branch2a`` is ``bn2a_branch2a``...)."""

    def __init__(self, s: Semantics, cin: int, mid: int, cout: int, stride: int, project: bool):
        super().__init__()
        if project:
            self.branch1 = s.conv(cin, cout, 1, stride=stride, bias=False)
            self.bn_branch1 = s.batch_norm(cout)
            self.scale_branch1 = s.scale(cout)
        self.branch2a = s.conv(cin, mid, 1, stride=stride, bias=False)
        self.bn_branch2a = s.batch_norm(mid)
        self.scale_branch2a = s.scale(mid)
        self.branch2a_relu = nn.ReLU()
        self.branch2b = s.conv(mid, mid, 3, pad=1, bias=False)
        self.bn_branch2b = s.batch_norm(mid)
        self.scale_branch2b = s.scale(mid)
        self.branch2b_relu = nn.ReLU()
        self.branch2c = s.conv(mid, cout, 1, bias=False)
        self.bn_branch2c = s.batch_norm(cout)
        self.scale_branch2c = s.scale(cout)
        self.relu = nn.ReLU()
        self.project = project

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.project:
            shortcut = conv_bn(self.branch1, self.bn_branch1, self.scale_branch1, x)
        else:
            shortcut = x
        y = self.branch2a_relu(conv_bn(self.branch2a, self.bn_branch2a, self.scale_branch2a, x))
        y = self.branch2b_relu(conv_bn(self.branch2b, self.bn_branch2b, self.scale_branch2b, y))
        y = conv_bn(self.branch2c, self.bn_branch2c, self.scale_branch2c, y)
        # An in-place final ReLU (the fast form) takes the sum in place too: y is this
        # block's own fresh tensor.
        return self.relu(y.add_(shortcut) if self.relu.inplace else shortcut + y)


class ResNet50(nn.Module):
    """Caffe ResNet-50. ``width`` is conv1's output (64); stages use ``width * 2^i`` inner and
    ``4 * width * 2^i`` outer channels. ``num_classes=None`` stops at ``pool5``;
    ``global_pool=True`` makes pool5 a Caffe global average (any input size)."""

    def __init__(
        self,
        semantics: str | Semantics = "caffe",
        num_classes: int | None = 1000,
        width: int = 64,
        global_pool: bool = False,
    ) -> None:
        super().__init__()
        s = get_semantics(semantics)
        self.semantics = s.name
        self.conv1 = s.conv(3, width, 7, stride=2, pad=3, bias=True)
        self.bn_conv1 = s.batch_norm(width)
        self.scale_conv1 = s.scale(width)
        self.conv1_relu = nn.ReLU()
        self.pool1 = s.max_pool(3, 2)
        cin = width
        self.blocks: list[str] = []
        for i, (stage, n, stride) in enumerate(_STAGES):
            mid, cout = width * 2**i, 4 * width * 2**i
            for b in range(n):
                name = f"res{stage}{chr(ord('a') + b)}"
                first = b == 0
                block = Bottleneck(s, cin, mid, cout, stride if first else 1, project=first)
                self.add_module(name, block)
                self.blocks.append(name)
                cin = cout
        self.pool5 = s.global_avg_pool() if global_pool else s.avg_pool(7, 1)
        self.fc1000 = s.fc(cin, num_classes) if num_classes else None
        self.out_channels = num_classes or cin

    def caffe_layer_names(self) -> dict[str, str]:
        """Module path -> Caffe layer name, e.g. ``res2a.bn_branch2a`` -> ``bn2a_branch2a``."""
        names = {}
        for path, _ in self.named_modules():
            if "." not in path:
                if path:
                    names[path] = path
                continue
            block, leaf = path.split(".", 1)
            suffix = block[3:]  # "2a" of "res2a"
            if leaf == "relu":
                names[path] = f"{block}_relu"
            elif leaf.startswith(("bn_", "scale_")):
                kind, branch = leaf.split("_", 1)
                names[path] = f"{kind}{suffix}_{branch}"
            else:
                names[path] = f"{block}_{leaf}"
        return names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.conv1_relu(conv_bn(self.conv1, self.bn_conv1, self.scale_conv1, x)))
        for name in self.blocks:
            x = getattr(self, name)(x)
        x = self.pool5(x)
        return x if self.fc1000 is None else self.fc1000(x)
