"""bottleneck: 1x1 reduce, 3x3, 1x1 expand residual block (ResNet-50 style)."""

from torch import Tensor, nn

from blocks.registry import BlockKind, BlockSpec, SourceBlock, register_kind, same_widths, \
    scaled, target_width
from blocks.shortcut import shortcut


class Bottleneck(nn.Module):
    """1x1-BN-ReLU-3x3(stride)-BN-ReLU-1x1-BN, plus shortcut, then ReLU.

    ``mid_channels`` defaults to a quarter of the output, the usual expansion 4.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        mid_channels: int | None = None,
    ) -> None:
        super().__init__()
        mid = mid_channels or max(1, out_channels // 4)
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = shortcut(in_channels, out_channels, stride)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def _target_spec(source: SourceBlock, ratio: float, in_channels: int) -> BlockSpec:
    mid = scaled(source.mid_channels or max(1, source.out_channels // 4), ratio)
    return BlockSpec("bottleneck", in_channels, target_width(source, ratio, "bottleneck"),
                     source.stride, mid_channels=mid)


BOTTLENECK = register_kind(BlockKind(
    "bottleneck",
    lambda s: Bottleneck(s.in_channels, s.out_channels, s.stride, s.mid_channels),
    _target_spec, same_widths("bottleneck"), summary="1x1 - 3x3 - 1x1 + shortcut"))
