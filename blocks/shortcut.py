"""The shortcut shared by residual kinds: identity unless the shape changes."""

from torch import nn


def shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity, or 1x1 conv + BN where width or resolution changes."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )
