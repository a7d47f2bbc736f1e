"""Whether a target fits where its source block was: the map size it gives, and
whether the fixed part after it can read a narrower output."""

from dataclasses import replace

import torch

from blocks import BlockSpec
from recast.adapt import adapt_input
from recast.errors import PlanError
from recast.walker import Block


def map_misfit(block: Block, target_shape: tuple[int, ...]) -> str | None:
    """Why a target whose output map differs in size from the teacher block's cannot
    stand in for it (a pooling in ceil mode on an odd map, ...), or None."""
    shape = target_shape
    if block.tail is not None:
        with torch.no_grad():
            shape = tuple(block.tail(torch.empty(target_shape, device="meta")).shape)
    if tuple(shape[2:]) == tuple(block.out_shape[2:]):
        return None
    return (f"a stride-{block.stride} target gives a {'x'.join(map(str, shape[2:]))} map where "
            f"the teacher block gives {'x'.join(map(str, block.out_shape[2:]))} (its own "
            f"pooling rounds differently)")


def unreadable(block: Block, channels: int) -> str | None:
    """Why fixed ``block`` cannot be rebuilt to read ``channels`` input channels (an
    attention block's permute, a functional op), or None if it can."""
    try:
        adapt_input(block.module, block.in_shape, channels)
    except PlanError as exc:
        return str(exc).split(";")[0]
    return None


def keep_output_width(spec: BlockSpec, block: Block, following: Block,
                      reason: str) -> tuple[BlockSpec, str]:
    """``spec`` at the teacher's output width, only its inside narrowed, and the note
    that says why: ``following`` cannot read fewer channels."""
    return replace(spec, out_channels=block.out_channels), (
        f"output kept at the teacher's {block.out_channels} channels (only the inside "
        f"narrowed) since {following.name} ({following.kind}) cannot read fewer: {reason}")
