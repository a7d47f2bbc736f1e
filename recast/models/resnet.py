"""CIFAR ResNets (He et al. 2016) as the recasting paper's authors build them.

Three stages of post-activation residual blocks with base widths 16, 32, 64
(times ``width``) and strides 1, 2, 2; global average pool; Linear.

- basic block: 3x3 conv (stride) -> BN -> ReLU -> 3x3 conv -> BN, + shortcut,
  -> ReLU. Depth 6n + 2: resnet20/32/44/56/110.
- bottleneck: 1x1 -> BN -> ReLU -> 3x3 (stride) -> BN -> ReLU -> 1x1 (x4)
  -> BN, + shortcut, -> ReLU. Depth 9n + 2: resnet83, resnet164.

Where the authors' scripts (common/model_generator.py, CifarResnetConfig)
differ from the textbook CIFAR ResNet, we follow the scripts:

- The stem is a bare 3x3 conv (no bias) with no BN or ReLU after it; the
  first residual block receives the raw conv output.
- Shortcuts are "option B": a 1x1 conv (stride, no bias) + BN wherever the
  shape changes, identity elsewhere (He et al.'s CIFAR nets used option A,
  zero-padding identity, which has no parameters). The scripts test only
  ``in != out`` channels; we also project when the stride alone changes the
  shape, which never happens in these configurations.
- They pool with AvgPool2d(8); we use AdaptiveAvgPool2d(1), identical at 32x32
  and still valid for other input sizes.

Parameters with 10 classes: resnet20 272,442 and resnet56 855,738. With
option A and a stem BN they would be 269,722 and 853,018 (the paper's 0.27M
and 0.85M): the two projections add 576 + 2,176 parameters, the bare stem
drops 32.
"""

from torch import Tensor, flatten, nn

from ._common import check_width, init_weights, scale_channels

__all__ = [
    "BasicBlock", "Bottleneck", "CifarResNet", "cifar_resnet",
    "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
    "resnet83", "resnet164",
]


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """1x1 conv + BN shortcut when the block changes the shape, else None (identity)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Post-activation basic block: conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = _projection(in_channels, out_channels, stride)
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


class Bottleneck(nn.Module):
    """Post-activation bottleneck: 1x1-BN-ReLU-3x3(stride)-BN-ReLU-1x1(x4)-BN, + shortcut, ReLU."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = _projection(in_channels, out_channels, stride)
        self.relu3 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + identity)


class CifarResNet(nn.Module):
    """Bare 3x3 stem conv, three stages of residual blocks, global average pool, Linear.

    Also the body of the authors' Wide ResNets (``wrn.py``), which only widen the
    stages. ``stage_channels`` are the blocks' inner widths before the multiplier
    (a bottleneck's output is ``expansion`` times wider).
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], blocks_per_stage: int,
                 *, num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                 stem_channels: int = 16,
                 stage_channels: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        check_width(width)
        channels = scale_channels(stem_channels, width)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False)
        stages = []
        for base, stride in zip(stage_channels, (1, 2, 2)):
            mid = scale_channels(base, width)
            layers = []
            for i in range(blocks_per_stage):
                layers.append(block(channels, mid, stride if i == 0 else 1))
                channels = mid * block.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = flatten(self.avgpool(x), 1)
        return self.fc(x)


def cifar_resnet(depth: int, *, bottleneck: bool = False, num_classes: int = 10,
                 in_channels: int = 3, width: float = 1.0) -> CifarResNet:
    """CIFAR ResNet of any valid depth: 6n + 2 with basic blocks, 9n + 2 with bottlenecks."""
    layers_per_block = 3 if bottleneck else 2
    n, rest = divmod(depth - 2, 3 * layers_per_block)
    if n < 1 or rest:
        form = "9n + 2" if bottleneck else "6n + 2"
        kind = "bottleneck" if bottleneck else "basic-block"
        raise ValueError(f"a {kind} CIFAR ResNet needs depth = {form} (n >= 1), got {depth}")
    block = Bottleneck if bottleneck else BasicBlock
    return CifarResNet(block, n, num_classes=num_classes, in_channels=in_channels, width=width)


def resnet20(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarResNet:
    """ResNet-20 (3 basic blocks per stage)."""
    return cifar_resnet(20, num_classes=num_classes, in_channels=in_channels, width=width)


def resnet32(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarResNet:
    """ResNet-32 (5 basic blocks per stage)."""
    return cifar_resnet(32, num_classes=num_classes, in_channels=in_channels, width=width)


def resnet44(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarResNet:
    """ResNet-44 (7 basic blocks per stage)."""
    return cifar_resnet(44, num_classes=num_classes, in_channels=in_channels, width=width)


def resnet56(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarResNet:
    """ResNet-56, the paper's basic-block -> conv transformation teacher."""
    return cifar_resnet(56, num_classes=num_classes, in_channels=in_channels, width=width)


def resnet110(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarResNet:
    """ResNet-110 (18 basic blocks per stage)."""
    return cifar_resnet(110, num_classes=num_classes, in_channels=in_channels, width=width)


def resnet29(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarResNet:
    """Bottleneck ResNet-29 (3 per stage): a CPU-scale bottleneck -> conv teacher."""
    return cifar_resnet(29, bottleneck=True, num_classes=num_classes,
                        in_channels=in_channels, width=width)


def resnet83(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarResNet:
    """Bottleneck ResNet-83 (9 per stage), the paper's bottleneck -> conv teacher."""
    return cifar_resnet(83, bottleneck=True, num_classes=num_classes,
                        in_channels=in_channels, width=width)


def resnet164(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarResNet:
    """Bottleneck ResNet-164 (18 per stage)."""
    return cifar_resnet(164, bottleneck=True, num_classes=num_classes,
                        in_channels=in_channels, width=width)
