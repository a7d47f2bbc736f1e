"""dwconv: a depthwise-separable block (MobileNetV1), cheap on mobile CPUs.

Warm start from an unexpanded inverted residual (3x3 depthwise then 1x1, as
MobileNetV2's first block and EfficientNet's MBConv1 are): the depthwise
filters of the kept input channels and the largest-L1 pointwise filters.
"""

import torch
from torch import Tensor, fx, nn

from blocks.registry import BlockKind, BlockSpec, SourceBlock, register_kind, same_widths, \
    target_width
from blocks.weights import copy_conv_bn, inverted_residual_convs, top_l1


class DWConvBlock(nn.Module):
    """3x3 depthwise (stride) - BN - ReLU - 1x1 - BN - ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.dw = nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels,
                            bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.pw = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn2(self.pw(self.relu(self.bn1(self.dw(x))))))


@torch.no_grad()
def warm_dwconv(source: fx.GraphModule, target: DWConvBlock, in_idx: Tensor,
                keep_outputs: bool = False) -> Tensor | None:
    """Fill a DWConvBlock from a [depthwise, 1x1] teacher block; None if it is not one."""
    convs = inverted_residual_convs(source)
    if convs is None or convs[0] is not None:
        return None
    (dw, dw_bn), (pw, pw_bn) = convs[1], convs[2]
    if dw.kernel_size != (3, 3) or dw.stride != target.dw.stride:
        return None
    width = target.pw.out_channels
    out_idx = torch.arange(width) if keep_outputs else top_l1(pw, width)
    copy_conv_bn(dw, dw_bn, target.dw, target.bn1, in_idx, torch.arange(1))
    copy_conv_bn(pw, pw_bn, target.pw, target.bn2, out_idx, in_idx)
    return out_idx


def _warm_start(source_kind: str, source: fx.GraphModule, target: nn.Module, in_idx: Tensor,
                keep_outputs: bool) -> Tensor | None:
    return warm_dwconv(source, target, in_idx, keep_outputs)


def _target_spec(source: SourceBlock, ratio: float, in_channels: int) -> BlockSpec:
    return BlockSpec("dwconv", in_channels, target_width(source, ratio, "dwconv"),
                     source.stride)


DWCONV = register_kind(BlockKind(
    "dwconv", lambda s: DWConvBlock(s.in_channels, s.out_channels, s.stride), _target_spec,
    same_widths("dwconv"), _warm_start, warm_sources=("inverted_residual",),
    summary="3x3 depthwise - BN - ReLU - 1x1 - BN - ReLU"))
