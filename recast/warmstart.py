"""Warm start: a target block begins from its teacher block's weights.

For conv->conv and basic->basic, the target keeps the teacher's output
channels whose filters have the largest L1 norm (Li et al., "Pruning Filters
for Efficient ConvNets"), and the input channels the previous block kept.
For basic->conv, the conv starts as the block's shortcut path (its residual
branch dropped). In benchmarks/cifar10.md the warm-started partial network
stays at 68-81% after every VGG-16 step where a random start falls to
11-50% (issue 4).
"""

import torch
from torch import Tensor, fx, nn

from blocks import BasicBlock, ConvBlock


def conv_bn_pairs(module: fx.GraphModule) -> list[tuple[nn.Conv2d, nn.Module | None]]:
    """(conv, the BN right after it) in execution order."""
    modules = dict(module.named_modules())
    pairs = []
    for node in module.graph.nodes:
        if node.op != "call_module" or not isinstance(modules[str(node.target)], nn.Conv2d):
            continue
        bn = None
        users = list(node.users)
        if len(users) == 1 and users[0].op == "call_module":
            after = modules[str(users[0].target)]
            if isinstance(after, nn.modules.batchnorm._BatchNorm):
                bn = after
        pairs.append((modules[str(node.target)], bn))
    return pairs


def top_l1(conv: nn.Conv2d, count: int) -> Tensor:
    """Indices of the ``count`` output filters with the largest L1 norm, sorted."""
    norms = conv.weight.detach().abs().flatten(1).sum(1)
    return norms.topk(count).indices.sort().values


@torch.no_grad()
def copy_conv_bn(src: nn.Conv2d, src_bn: nn.Module | None, dst: nn.Conv2d,
                 dst_bn: nn.Module | None, out_idx: Tensor, in_idx: Tensor) -> None:
    """dst <- src[out_idx][:, in_idx], and the BN statistics for out_idx."""
    dst.weight.copy_(src.weight[out_idx][:, in_idx])
    if src.bias is not None and dst.bias is not None:
        dst.bias.copy_(src.bias[out_idx])
    if src_bn is not None and dst_bn is not None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            source = getattr(src_bn, name, None)
            if source is not None:
                getattr(dst_bn, name).copy_(source[out_idx])


def warm_conv(source: fx.GraphModule, target: ConvBlock, in_idx: Tensor,
              out_idx: Tensor | None = None) -> Tensor:
    """Fill a ConvBlock from a teacher conv block; returns the kept outputs."""
    conv, bn = conv_bn_pairs(source)[0]
    out_idx = top_l1(conv, target.conv.out_channels) if out_idx is None else out_idx
    copy_conv_bn(conv, bn, target.conv, target.bn, out_idx, in_idx)
    return out_idx


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
                for o, channel in enumerate(out_idx.tolist()):
                    match = (in_idx == channel).nonzero()
                    if len(match):
                        dst_conv.weight[o, int(match[0])] = 1.0
    return out_idx


@torch.no_grad()
def warm_conv_from_basic(source: fx.GraphModule, target: ConvBlock, in_idx: Tensor) -> Tensor:
    """A ConvBlock that starts as the basic block's shortcut: its residual branch dropped.

    A post-activation basic block computes relu(main(x) + shortcut(x)); without
    the main branch that is relu(shortcut(x)), which a 3x3 conv reproduces
    exactly (in eval mode) with the shortcut's 1x1 weights, or the identity, in
    its centre tap. Far closer to the teacher than a random conv; the step then
    trains it to stand in for the whole block.
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
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(target.bn, name).copy_(getattr(bn, name)[out_idx])
        return out_idx
    full = main[-1][0].out_channels if main else width
    out_idx = in_idx if len(in_idx) == width else top_l1(main[-1][0], width) \
        if main and width < full else torch.arange(width)
    for o, channel in enumerate(out_idx.tolist()):  # identity on the channels it keeps
        match = (in_idx == channel).nonzero()
        if len(match):
            target.conv.weight[o, int(match[0]), 1, 1] = 1.0
    target.bn.reset_parameters()
    target.bn.reset_running_stats()
    return out_idx


def can_warm_start(kind: str, target: str) -> bool:
    """Source/target kind pairs with a warm start."""
    return kind == target and kind in ("conv", "basic") or (kind, target) == ("basic", "conv")


def warm_start(source: fx.GraphModule, target: nn.Module, in_idx: Tensor,
               keep_outputs: bool = False, kind: str | None = None) -> Tensor | None:
    """Warm-start ``target`` (optionally followed by a tail) from ``source``.

    ``keep_outputs`` keeps every teacher output channel (the temporary next
    block). Returns the teacher channels the target's output holds, or None
    when this pair of kinds has no warm start (the target stays random).
    """
    block = target[0] if isinstance(target, nn.Sequential) else target
    if kind == "basic" and isinstance(block, ConvBlock) and not keep_outputs:
        return warm_conv_from_basic(source, block, in_idx)
    if isinstance(block, ConvBlock):
        out = torch.arange(block.conv.out_channels) if keep_outputs else None
        return warm_conv(source, block, in_idx, out)
    if isinstance(block, BasicBlock):
        out = torch.arange(block.conv2.out_channels) if keep_outputs else None
        return warm_basic(source, block, in_idx, out)
    return None


def warm_student(plan, init: str = "teacher") -> tuple[list[nn.Module], list[Tensor | None]]:
    """Every block of ``plan``'s student at once, warm-started where it can be.

    Returns the blocks and, per block, the teacher channels its output holds
    (None where the output is not a subset of the teacher's channels).
    """
    from recast.adapt import adapt_input

    blocks: list[nn.Module] = []
    kept: list[Tensor | None] = []
    previous: Tensor | None = None
    for index, step in enumerate(plan.steps):
        block = step.block
        in_idx = previous if previous is not None else torch.arange(block.in_channels)
        warm = init == "teacher" and (previous is not None or step.in_channels == block.in_channels)
        if step.recast:
            module = plan.build_block(index)
            out = warm_start(block.module, module, in_idx, kind=block.kind) \
                if warm and can_warm_start(block.kind, step.target) else None
        else:
            module = adapt_input(block.module, block.in_shape, step.in_channels,
                                 in_idx if warm and step.in_channels != block.in_channels else None)
            out = torch.arange(step.out_channels) if step.out_channels == block.out_channels \
                else None
        blocks.append(module)
        if out is None and step.out_channels == block.out_channels:
            out = torch.arange(step.out_channels)
        kept.append(out)
        previous = out
    return blocks, kept
