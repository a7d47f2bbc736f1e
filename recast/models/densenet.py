"""CIFAR DenseNet-BC (Huang et al. 2017) as the recasting paper's authors build it.

Depth d = 6n + 4 gives three dense blocks of n bottleneck layers each:
BN-ReLU-1x1 conv (4k) -> BN-ReLU-3x3 conv (k), whose k new channels are
concatenated to the layer's input. A 3x3 stem conv makes 2k channels;
transitions halve the channels (compression 0.5, floored) and the resolution.

The authors' scripts (common/model_generator.py, CifarDensenetConfig) group
the layers differently from the paper's figure, and we follow them because
the grouping decides what a recast "dense" block is:

- each ``DenseBlock`` ends with its own BN -> ReLU, so its output is
  activated like every other block kind's; the transition is then just a 1x1
  conv and a 2x2 average pool, and the head is pool -> Linear (the usual
  "transition BN-ReLU" and "final BN-ReLU" are the blocks' closing BN-ReLU);
- the stem conv and the transition convs carry a bias (the other convs do
  not), the default of their ``ConvBlock``.

They pool with AvgPool2d(8); we use AdaptiveAvgPool2d(1) (identical at 32x32).
DenseNet-BC-100 (k = 12) has 769,444 parameters (282 of them the stem and
transition biases) and 287,926,272 conv MACs at 32x32 with 10 classes.
"""

import math

import torch
from torch import Tensor, flatten, nn

from blocks import DenseLayer

from ._common import check_width, init_weights, scale_channels

__all__ = ["DenseBlock", "Transition", "CifarDenseNet", "densenet_bc",
           "densenet_bc_40_12", "densenet_bc_100_12"]


class DenseBlock(nn.Module):
    """One whole dense block, the unit the paper recasts: N dense layers, then BN-ReLU."""

    def __init__(self, in_channels: int, growth_rate: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[
            DenseLayer(in_channels + i * growth_rate, growth_rate) for i in range(num_layers)
        ])
        self.out_channels = in_channels + num_layers * growth_rate
        self.bn = nn.BatchNorm2d(self.out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:  # each layer's output joins the input it read
            x = torch.cat([x, layer(x)], 1)
        return self.relu(self.bn(x))


class Transition(nn.Module):
    """1x1 conv (with bias, as the authors have it) to fewer channels, then 2x2 average pool."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=True)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.conv(x))


class CifarDenseNet(nn.Module):
    """Stem conv, dense block, transition, dense block, transition, dense block, pool, Linear."""

    def __init__(self, layers_per_block: int, growth_rate: int, *, compression: float = 0.5,
                 num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        k = growth_rate
        channels = 2 * k
        self.conv1 = nn.Conv2d(in_channels, channels, 3, 1, 1, bias=True)
        self.block1 = DenseBlock(channels, k, layers_per_block)
        channels = self.block1.out_channels
        self.trans1 = Transition(channels, max(1, math.floor(channels * compression)))
        channels = self.trans1.conv.out_channels
        self.block2 = DenseBlock(channels, k, layers_per_block)
        channels = self.block2.out_channels
        self.trans2 = Transition(channels, max(1, math.floor(channels * compression)))
        channels = self.trans2.conv.out_channels
        self.block3 = DenseBlock(channels, k, layers_per_block)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.block3.out_channels, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x = self.trans1(self.block1(x))
        x = self.trans2(self.block2(x))
        x = self.block3(x)
        x = flatten(self.avgpool(x), 1)
        return self.fc(x)


def densenet_bc(depth: int, growth_rate: int, *, compression: float = 0.5,
                num_classes: int = 10, in_channels: int = 3,
                width: float = 1.0) -> CifarDenseNet:
    """DenseNet-BC of depth 6n + 4; ``width`` scales the growth rate (and so every layer)."""
    check_width(width)
    n, rest = divmod(depth - 4, 6)
    if n < 1 or rest:
        raise ValueError(f"a DenseNet-BC needs depth = 6n + 4 (n >= 1), got {depth}")
    if not 0 < compression <= 1:
        raise ValueError(f"compression must be in (0, 1], got {compression}")
    return CifarDenseNet(n, scale_channels(growth_rate, width), compression=compression,
                         num_classes=num_classes, in_channels=in_channels)


def densenet_bc_40_12(*, num_classes: int = 10, in_channels: int = 3,
                      width: float = 1.0) -> CifarDenseNet:
    """DenseNet-BC-40 with growth rate 12: the paper's dense -> basic case at CPU scale."""
    return densenet_bc(40, 12, num_classes=num_classes, in_channels=in_channels, width=width)


def densenet_bc_100_12(*, num_classes: int = 10, in_channels: int = 3,
                       width: float = 1.0) -> CifarDenseNet:
    """DenseNet-BC-100 with growth rate 12, the paper's dense -> basic teacher."""
    return densenet_bc(100, 12, num_classes=num_classes, in_channels=in_channels, width=width)
