"""conv: the plain block every other kind can be recast into."""

from torch import Tensor, nn


class ConvBlock(nn.Module):
    """3x3 conv (no bias) -> BN -> ReLU, as the recasting authors build it."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))
