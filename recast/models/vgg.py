"""CIFAR VGG-11/13/16/19 with batch norm (the paper's VGG-16 teacher).

Layout: 3x3 conv (pad 1, no bias) -> BN -> ReLU blocks, a 2x2 max-pool after
each stage, then flatten and a single Linear on the 1x1x512 map. With width 1
and 10 classes VGG-16 has 14,724,042 parameters and 313,196,544 conv MACs,
the numbers behind the paper's 14.71M / 313.20M.

Difference from the authors' scripts (common/model_generator.py,
CifarVgg16Config): there the convs carry a bias and the classifier is
Linear(512, 512) -> BN1d -> ReLU -> Linear(512, classes), about 14.99M
parameters. The paper's Table 3 (14.71M parameters; 2.36M after recasting at
0.4) matches the bias-free, single-Linear network built here, so this is the
one we use.

The classifier reads a 1x1 map, so these models only take 32x32 inputs; use
torchvision's ``vgg16_bn`` and friends for other sizes.
"""

from torch import Tensor, flatten, nn

from blocks import ConvBlock

from ._common import check_width, init_weights, scale_channels

__all__ = ["CifarVGG", "cifar_vgg", "vgg11", "vgg13", "vgg16", "vgg19"]

# Output channels of each conv; "M" is a 2x2 max-pool closing a stage.
CFGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
         512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class CifarVGG(nn.Module):
    """``features`` (conv blocks and pools) -> flatten -> one ``classifier`` Linear."""

    def __init__(self, cfg: list[int | str], num_classes: int = 10,
                 in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        check_width(width)
        layers: list[nn.Module] = []
        channels = in_channels
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                out = scale_channels(int(item), width)
                layers.append(ConvBlock(channels, out))
                channels = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        x = flatten(x, 1)
        return self.classifier(x)


def cifar_vgg(depth: int, *, num_classes: int = 10, in_channels: int = 3,
              width: float = 1.0) -> CifarVGG:
    """CIFAR VGG of depth 11, 13, 16 or 19 (counting the Linear as a layer)."""
    if depth not in CFGS:
        raise ValueError(f"CIFAR VGG depth must be one of {sorted(CFGS)}, got {depth}")
    return CifarVGG(CFGS[depth], num_classes=num_classes,
                    in_channels=in_channels, width=width)


def vgg11(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarVGG:
    """CIFAR VGG-11-BN."""
    return cifar_vgg(11, num_classes=num_classes, in_channels=in_channels, width=width)


def vgg13(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarVGG:
    """CIFAR VGG-13-BN."""
    return cifar_vgg(13, num_classes=num_classes, in_channels=in_channels, width=width)


def vgg16(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarVGG:
    """CIFAR VGG-16-BN, the paper's compression teacher (recast at width 0.4)."""
    return cifar_vgg(16, num_classes=num_classes, in_channels=in_channels, width=width)


def vgg19(*, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarVGG:
    """CIFAR VGG-19-BN."""
    return cifar_vgg(19, num_classes=num_classes, in_channels=in_channels, width=width)
