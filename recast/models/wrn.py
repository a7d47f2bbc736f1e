"""Wide ResNets WRN-d-k for CIFAR, as the recasting paper's authors build them.

Depth d = 6n + 4: a 3x3 stem conv with 16 channels, then three stages of n
basic blocks with 16k, 32k, 64k channels (strides 1, 2, 2), global average
pool, Linear.

Zagoruyko & Komodakis' WRN is pre-activation (BN-ReLU-conv, dropout between
the convs, a final BN-ReLU before pooling, bare 1x1 conv shortcuts). The
authors' scripts (common/model_generator.py, CifarWrnConfig) instead reuse
their post-activation CIFAR ResNet basic block: conv-BN-ReLU-conv-BN, + a
1x1 conv + BN shortcut where the width changes (including the first block,
16 -> 16k), -> ReLU, after a bare stem conv, without dropout. We follow the
scripts, so WRN-28-10 is ``CifarResNet`` with wider stages. With 10 classes
it has 36,481,402 parameters and 5,243,322,368 conv MACs at 32x32 (paper:
36.45M / 5.24B); WRN-28-2 has 1,468,026 and 214,351,872 (paper: 1.46M /
0.21B).

``width`` scales every conv, the stem too, so ``wrn_28_10(width=0.2)`` (stem
of 3 channels, 1,463,515 parameters) is not ``wrn_28_2``: the paper never
recasts the stem, so its 0.2 student is WRN-28-2 with the 16-channel stem.

Note: the authors' wrn_28_10_baseline.py calls
``CifarResnetConfig(k=10, num_layers=28)``, a function without ``k``; their
recasting script uses ``CifarWrnConfig(k=10, num_layers=28)``, which is what
this file reproduces.
"""

from .resnet import BasicBlock, CifarResNet

__all__ = ["wide_resnet", "wrn_16_4", "wrn_16_8", "wrn_28_2", "wrn_28_10", "wrn_40_4"]


def wide_resnet(depth: int, widen_factor: int, *, num_classes: int = 10,
                in_channels: int = 3, width: float = 1.0) -> CifarResNet:
    """WRN-depth-widen_factor; ``width`` scales every layer on top, stem included."""
    n, rest = divmod(depth - 4, 6)
    if n < 1 or rest:
        raise ValueError(f"a Wide ResNet needs depth = 6n + 4 (n >= 1), got {depth}")
    if widen_factor < 1:
        raise ValueError(f"widen_factor must be >= 1, got {widen_factor}")
    k = widen_factor
    return CifarResNet(BasicBlock, n, num_classes=num_classes, in_channels=in_channels,
                       width=width, stem_channels=16,
                       stage_channels=(16 * k, 32 * k, 64 * k))


def wrn_16_4(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarResNet:
    """WRN-16-4."""
    return wide_resnet(16, 4, num_classes=num_classes, in_channels=in_channels, width=width)


def wrn_16_8(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarResNet:
    """WRN-16-8."""
    return wide_resnet(16, 8, num_classes=num_classes, in_channels=in_channels, width=width)


def wrn_28_2(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarResNet:
    """WRN-28-2: the shape the paper recasts WRN-28-10 into (ratio 0.2)."""
    return wide_resnet(28, 2, num_classes=num_classes, in_channels=in_channels, width=width)


def wrn_28_10(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarResNet:
    """WRN-28-10, the paper's basic -> basic compression teacher."""
    return wide_resnet(28, 10, num_classes=num_classes, in_channels=in_channels, width=width)


def wrn_40_4(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarResNet:
    """WRN-40-4."""
    return wide_resnet(40, 4, num_classes=num_classes, in_channels=in_channels, width=width)
