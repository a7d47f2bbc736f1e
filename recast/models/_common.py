"""Small helpers shared by the CIFAR model families."""

from torch import nn


def scale_channels(channels: int, width: float) -> int:
    """Channel count after the width multiplier; never below one channel.

    Python's round() (half to even) is what the paper's numbers need: VGG-16 at
    0.4 keeps round(64 * 0.4) = 26, ..., round(512 * 0.4) = 205 channels, which
    gives the 2,360,974 parameters and 50,631,372 conv MACs of METHOD.md.
    """
    return max(1, round(channels * width))


def check_width(width: float) -> None:
    """Reject multipliers that cannot give a model (zero, negative, NaN)."""
    if not width > 0:
        raise ValueError(f"width must be a positive multiplier, got {width!r}")


def init_weights(model: nn.Module) -> None:
    """torchvision's initialisation: Kaiming-normal convs (fan_out, ReLU), BN 1/0.

    The authors' scripts used Xavier-uniform convs; Kaiming is the torchvision
    convention this project follows, and the teacher is trained by us anyway.
    Linear layers keep PyTorch's default initialisation, as in torchvision's
    ResNet.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
