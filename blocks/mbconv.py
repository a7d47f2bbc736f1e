"""mbconv: MobileNetV2's inverted residual, the standard mobile block.

The expanded width travels in ``BlockSpec.mid_channels`` so a spec stays
plain JSON and a saved student rebuilds exactly; it defaults to 6x the input
(the paper's expansion). Warm start from a walked inverted residual: the
expand conv's largest-L1 filters, the matching depthwise filters, and the
project conv's largest-L1 outputs (the input's channels when the target adds
its input). A block without an expand conv (MobileNetV2's first) starts with
an expand that selects its input channels: exact when the input is >= 0.
"""

import torch
from torch import Tensor, fx, nn

from blocks.registry import BlockKind, BlockSpec, SourceBlock, register_kind, scaled, \
    target_width
from blocks.weights import copy_conv_bn, inverted_residual_convs, select_channels, top_l1

EXPANSION = 6


class MBConv(nn.Module):
    """1x1 expand - BN - ReLU6 - 3x3 depthwise (stride) - BN - ReLU6 - 1x1 project - BN,
    plus the input when stride is 1 and the width is unchanged."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 mid_channels: int | None = None) -> None:
        super().__init__()
        mid = mid_channels or EXPANSION * in_channels
        self.expand = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.dw = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.project = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU6()
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.expand(x)))
        out = self.act(self.bn2(self.dw(out)))
        out = self.bn3(self.project(out))
        return out + x if self.residual else out


@torch.no_grad()
def warm_mbconv(source: fx.GraphModule, target: MBConv, in_idx: Tensor,
                keep_outputs: bool = False) -> Tensor | None:
    """Fill an MBConv from a teacher inverted residual; None if its shape does not fit."""
    convs = inverted_residual_convs(source)
    if convs is None:
        return None
    expand, (dw, dw_bn), (project, project_bn) = convs
    mid, width = target.dw.out_channels, target.project.out_channels
    if dw.kernel_size != (3, 3) or dw.stride != target.dw.stride or mid > dw.out_channels:
        return None
    if expand is None:  # no expand in the teacher: select the strongest input channels
        if mid > len(in_idx):
            return None
        norms = dw.weight.detach().abs().flatten(1).sum(1)[in_idx]
        mid_idx = in_idx[norms.topk(mid).indices.sort().values]
        target.expand.weight.zero_()
        select_channels(target.expand.weight[:, :, 0, 0], mid_idx, in_idx)
        target.bn1.reset_parameters()
        target.bn1.reset_running_stats()
    else:
        mid_idx = top_l1(expand[0], mid) if mid < expand[0].out_channels else torch.arange(mid)
        copy_conv_bn(expand[0], expand[1], target.expand, target.bn1, mid_idx, in_idx)
    teacher_in = expand[0].in_channels if expand is not None else dw.in_channels
    teacher_adds = dw.stride == (1, 1) and project.out_channels == teacher_in
    if keep_outputs:
        out_idx = torch.arange(width)
    elif target.residual and teacher_adds and len(in_idx) == width:
        out_idx = in_idx  # the sum adds the same teacher channels on both sides
    else:
        out_idx = top_l1(project, width)
    copy_conv_bn(dw, dw_bn, target.dw, target.bn2, mid_idx, torch.arange(1))
    copy_conv_bn(project, project_bn, target.project, target.bn3, out_idx, mid_idx)
    return out_idx


def _warm_start(source_kind: str, source: fx.GraphModule, target: nn.Module, in_idx: Tensor,
                keep_outputs: bool) -> Tensor | None:
    return warm_mbconv(source, target, in_idx, keep_outputs)


def _target_spec(source: SourceBlock, ratio: float, in_channels: int) -> BlockSpec:
    """Width by the paper's rule; the expanded width is the teacher's scaled by the
    ratio for an inverted residual source, else 6x the input."""
    mid = scaled(source.mid_channels, ratio) if source.kind == "inverted_residual" and \
        source.mid_channels else EXPANSION * in_channels
    return BlockSpec("mbconv", in_channels, target_width(source, ratio, "mbconv"),
                     source.stride, mid_channels=mid)


def _rebuild(source: SourceBlock, in_channels: int) -> BlockSpec:
    """The source's output, stride and expanded width, reading ``in_channels``."""
    return BlockSpec("mbconv", in_channels, source.out_channels, source.stride,
                     mid_channels=source.mid_channels or EXPANSION * in_channels)


MBCONV = register_kind(BlockKind(
    "mbconv", lambda s: MBConv(s.in_channels, s.out_channels, s.stride, s.mid_channels),
    _target_spec, _rebuild, _warm_start, warm_sources=("inverted_residual",),
    summary="1x1 expand - 3x3 depthwise - 1x1 project (+ shortcut)"))
