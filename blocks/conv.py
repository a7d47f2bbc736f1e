"""conv: the plain block every other kind can be recast into.

Warm starts: from a conv block, the teacher's largest-L1 filters (and the input
channels the previous block kept); from a basic block, the block's shortcut
path, its residual branch dropped.
"""

import torch
from torch import Tensor, fx, nn

from blocks.registry import BlockKind, BlockSpec, SourceBlock, register_kind, same_widths, \
    target_width
from blocks.weights import conv_bn_pairs, copy_bn, copy_conv_bn, select_channels, top_l1


class ConvBlock(nn.Module):
    """3x3 conv (no bias) -> BN -> ReLU, as the recasting authors build it."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


def warm_conv(source: fx.GraphModule, target: ConvBlock, in_idx: Tensor,
              out_idx: Tensor | None = None) -> Tensor:
    """Fill a ConvBlock from a teacher conv block; returns the kept outputs."""
    conv, bn = conv_bn_pairs(source)[0]
    out_idx = top_l1(conv, target.conv.out_channels) if out_idx is None else out_idx
    copy_conv_bn(conv, bn, target.conv, target.bn, out_idx, in_idx)
    return out_idx


@torch.no_grad()
def warm_conv_from_basic(source: fx.GraphModule, target: ConvBlock, in_idx: Tensor) -> Tensor:
    """A ConvBlock that starts as the basic block's shortcut: its residual branch dropped.

    A post-activation basic block computes relu(main(x) + shortcut(x)); without
    the main branch that is relu(shortcut(x)), which a 3x3 conv reproduces
    exactly (in eval mode) with the shortcut's 1x1 weights, or the identity, in
    its centre tap.
    """
    pairs = conv_bn_pairs(source)
    side = [p for p in pairs if p[0].kernel_size == (1, 1)]
    main = [p for p in pairs if p[0].kernel_size == (3, 3)]
    width = target.conv.out_channels
    target.conv.weight.zero_()
    if side:
        conv, bn = side[0]
        out_idx = top_l1(conv, width) if width < conv.out_channels else torch.arange(width)
        target.conv.weight[:, :, 1, 1] = conv.weight[out_idx][:, in_idx, 0, 0]
        if bn is not None:
            copy_bn(bn, target.bn, out_idx)
        return out_idx
    full = main[-1][0].out_channels if main else width
    out_idx = in_idx if len(in_idx) == width else top_l1(main[-1][0], width) \
        if main and width < full else torch.arange(width)
    select_channels(target.conv.weight[:, :, 1, 1], out_idx, in_idx)
    target.bn.reset_parameters()
    target.bn.reset_running_stats()
    return out_idx


def _warm_start(source_kind: str, source: fx.GraphModule, target: nn.Module, in_idx: Tensor,
                keep_outputs: bool) -> Tensor | None:
    if source_kind == "basic" and not keep_outputs:
        return warm_conv_from_basic(source, target, in_idx)
    if source_kind == "conv":
        out = torch.arange(target.conv.out_channels) if keep_outputs else None
        return warm_conv(source, target, in_idx, out)
    return None


def _target_spec(source: SourceBlock, ratio: float, in_channels: int) -> BlockSpec:
    return BlockSpec("conv", in_channels, target_width(source, ratio, "conv"), source.stride)


CONV = register_kind(BlockKind(
    "conv", lambda s: ConvBlock(s.in_channels, s.out_channels, s.stride), _target_spec,
    same_widths("conv"), _warm_start, warm_sources=("conv", "basic"),
    summary="3x3 conv - BN - ReLU"))
