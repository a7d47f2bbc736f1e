"""Whether a target fits where its source block was: the map size it gives, and
whether the fixed part after it can read a narrower output."""

from dataclasses import replace

import torch

from blocks import BlockSpec
from recast.adapt import adapt_input
from recast.errors import PlanError
from recast.walker import Block, BlockChain


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


def fit_next(chain: BlockChain, block: Block, spec: BlockSpec) -> tuple[BlockSpec, str | None]:
    """``spec``, or ``spec`` at the teacher's output width when the fixed part after
    ``block`` cannot be rebuilt to read a narrower input (an attention block's permute,
    a functional op): only the target's inside is narrowed then, and the note says so."""
    following = chain.blocks[block.index + 1] if block.index + 1 < len(chain.blocks) else None
    if following is None or following.recastable or spec.out_channels == block.out_channels:
        return spec, None
    try:
        adapt_input(following.module, following.in_shape, spec.out_channels)
    except PlanError as exc:
        reason = str(exc).split(";")[0]
        return replace(spec, out_channels=block.out_channels), (
            f"output kept at the teacher's {block.out_channels} channels (only the inside "
            f"narrowed) since {following.name} ({following.kind}) cannot read fewer: {reason}")
    return spec, None
