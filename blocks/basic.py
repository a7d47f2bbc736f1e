"""basic: the two-conv residual block of ResNet-18/34 and CIFAR ResNets.

Warm start from a basic block: the teacher's largest-L1 filters of both convs
(the identity's channels where the shortcut is an identity), the shortcut
copied or turned into a channel selection.
"""

import torch
from torch import Tensor, fx, nn

from blocks.registry import BlockKind, BlockSpec, SourceBlock, register_kind, same_widths, \
    target_width
from blocks.shortcut import shortcut
from blocks.weights import conv_bn_pairs, copy_conv_bn, select_channels, top_l1


class BasicBlock(nn.Module):
    """conv3x3(stride)-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = shortcut(in_channels, out_channels, stride)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def warm_basic(source: fx.GraphModule, target: BasicBlock, in_idx: Tensor,
               out_idx: Tensor | None = None) -> Tensor | None:
    """Fill a BasicBlock from a teacher basic block; None if its shape is unusual."""
    pairs = conv_bn_pairs(source)
    main = [p for p in pairs if p[0].kernel_size == (3, 3)]
    side = [p for p in pairs if p[0].kernel_size == (1, 1)]
    if len(main) != 2:
        return None
    (conv1, bn1), (conv2, bn2) = main
    width = target.conv2.out_channels
    if out_idx is None:
        identity = not side and len(in_idx) == width
        out_idx = in_idx if identity else top_l1(conv2, width)
    mid_idx = top_l1(conv1, target.conv1.out_channels) if len(out_idx) < conv1.out_channels \
        else torch.arange(conv1.out_channels)
    copy_conv_bn(conv1, bn1, target.conv1, target.bn1, mid_idx, in_idx)
    copy_conv_bn(conv2, bn2, target.conv2, target.bn2, out_idx, mid_idx)
    if isinstance(target.shortcut, nn.Sequential):
        dst_conv, dst_bn = target.shortcut[0], target.shortcut[1]
        if side:
            copy_conv_bn(side[0][0], side[0][1], dst_conv, dst_bn, out_idx, in_idx)
        else:  # teacher adds its input: select the same channels
            with torch.no_grad():
                dst_conv.weight.zero_()
                select_channels(dst_conv.weight[:, :, 0, 0], out_idx, in_idx)
    return out_idx


def _warm_start(source_kind: str, source: fx.GraphModule, target: nn.Module, in_idx: Tensor,
                keep_outputs: bool) -> Tensor | None:
    out = torch.arange(target.conv2.out_channels) if keep_outputs else None
    return warm_basic(source, target, in_idx, out)


def _target_spec(source: SourceBlock, ratio: float, in_channels: int) -> BlockSpec:
    return BlockSpec("basic", in_channels, target_width(source, ratio, "basic"), source.stride)


BASIC = register_kind(BlockKind(
    "basic", lambda s: BasicBlock(s.in_channels, s.out_channels, s.stride), _target_spec,
    same_widths("basic"), _warm_start, warm_sources=("basic",),
    summary="two 3x3 convs + shortcut"))
