"""dense: a whole DenseNet-BC dense block (layers concatenate their outputs)."""

import torch
from torch import Tensor, nn

from blocks.registry import BlockKind, BlockSpec, SourceBlock, register_kind, scaled


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 (4k) - BN-ReLU-3x3 (k); the caller concatenates."""

    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        return self.conv2(self.relu(self.bn2(out)))


class DenseBlock(nn.Module):
    """N dense layers; output width is ``in_channels + N * growth``.

    Built from (in, out) like every kind: N is ``(out - in) / growth``, so
    ``out - in`` must be a positive multiple of ``growth``. Dense blocks keep
    the resolution; the transition that follows them pools.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, growth: int = 12
    ) -> None:
        super().__init__()
        extra = out_channels - in_channels
        if stride != 1:
            raise ValueError("a dense block keeps the resolution: stride must be 1")
        if extra <= 0 or extra % growth:
            raise ValueError(
                f"a dense block cannot go from {in_channels} to {out_channels} "
                f"channels with growth {growth}: out - in must be a positive "
                f"multiple of the growth"
            )
        widths = range(in_channels, out_channels, growth)
        self.layers = nn.ModuleList(DenseLayer(w, growth) for w in widths)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        return x


def _target_spec(source: SourceBlock, ratio: float, in_channels: int) -> BlockSpec:
    if source.kind != "dense" or not source.growth or not source.n_layers:
        raise ValueError(f"block {source.name} is {source.kind}: a dense target needs a dense "
                         f"source (its layer count and growth); choose --target conv or basic")
    growth = scaled(source.growth, ratio)
    return BlockSpec("dense", in_channels, in_channels + source.n_layers * growth, 1,
                     growth=growth)


def _rebuild(source: SourceBlock, in_channels: int) -> BlockSpec:
    growth = source.growth or 12
    out = in_channels + source.n_layers * growth if source.n_layers and source.growth \
        else source.out_channels
    return BlockSpec("dense", in_channels, out, source.stride, growth=source.growth)


DENSE = register_kind(BlockKind(
    "dense", lambda s: DenseBlock(s.in_channels, s.out_channels, s.stride, s.growth or 12),
    _target_spec, _rebuild, summary="DenseNet-BC dense block"))
