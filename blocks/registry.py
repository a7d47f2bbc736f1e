"""Kind name -> builder, so a plan can name the block it wants as data."""

from dataclasses import asdict, dataclass
from typing import Any, Callable

from torch import nn

from blocks.basic import BasicBlock
from blocks.bottleneck import Bottleneck
from blocks.conv import ConvBlock
from blocks.dense import DenseBlock

BLOCK_KINDS: dict[str, Callable[..., nn.Module]] = {
    "conv": ConvBlock,
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "dense": DenseBlock,
}


@dataclass(frozen=True)
class BlockSpec:
    """Everything needed to rebuild a target block: JSON-safe by design."""

    kind: str
    in_channels: int
    out_channels: int
    stride: int = 1
    mid_channels: int | None = None
    growth: int | None = None

    def build(self) -> nn.Module:
        return build_block(**asdict(self))

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def build_block(
    kind: str,
    in_channels: int,
    out_channels: int,
    stride: int = 1,
    mid_channels: int | None = None,
    growth: int | None = None,
) -> nn.Module:
    """Build a target block of ``kind``; unknown kinds name the known ones."""
    if kind not in BLOCK_KINDS:
        known = ", ".join(BLOCK_KINDS)
        raise ValueError(f"unknown block kind '{kind}'; choose one of: {known}")
    if kind == "bottleneck":
        return Bottleneck(in_channels, out_channels, stride, mid_channels)
    if kind == "dense":
        return DenseBlock(in_channels, out_channels, stride, growth or 12)
    return BLOCK_KINDS[kind](in_channels, out_channels, stride)
