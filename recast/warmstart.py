"""Warm start: a target block begins from its teacher block's weights.

Each block kind says which source kinds it can start from (``blocks/``); this
module asks it, for one block or for a whole student at once.
"""

import torch
from torch import Tensor, nn

from blocks import block_kind
from recast.adapt import adapt_input
from recast.plan import Plan
from recast.walker import Block


def can_warm_start(kind: str, target: str) -> bool:
    """Whether a ``target`` block can start from a teacher block of ``kind``."""
    return kind in block_kind(target).warm_sources


def warm_start(block: Block, target: nn.Module, in_idx: Tensor, keep_outputs: bool = False,
               target_kind: str | None = None) -> Tensor | None:
    """Warm-start ``target`` (optionally followed by a tail) from teacher ``block``.

    ``target_kind`` defaults to the block's own kind (the temporary next block);
    ``keep_outputs`` keeps every teacher output channel. Returns the teacher
    channels the target's output holds, or None when the target kind has no warm
    start from this block's kind (the target stays random): callers need not ask
    :func:`can_warm_start` first.
    """
    kind = block_kind(target_kind or block.kind)
    if kind.warm_start is None or block.kind not in kind.warm_sources:
        return None
    module = target[0] if isinstance(target, nn.Sequential) else target
    return kind.warm_start(block.kind, block.module, module, in_idx, keep_outputs)


def warm_student(plan: Plan, init: str = "teacher") -> tuple[list[nn.Module], list[Tensor | None]]:
    """Every block of ``plan``'s student at once, warm-started where it can be.

    Returns the blocks and, per block, the teacher channels its output holds
    (None where the output is not a subset of the teacher's channels).
    """
    blocks: list[nn.Module] = []
    kept: list[Tensor | None] = []
    previous: Tensor | None = None
    for index, step in enumerate(plan.steps):
        block = step.block
        in_idx = previous if previous is not None else torch.arange(block.in_channels)
        warm = init == "teacher" and (previous is not None or step.in_channels == block.in_channels)
        if step.spec is not None:  # a target, or a kept block rebuilt to read a new width
            module = plan.build_block(index)
            out = warm_start(block, module, in_idx, not step.recast, step.target) \
                if warm else None
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
