"""Plan a student: which target block replaces each source block, how wide.

Widths follow the recasting paper: a target's output width is the source's
output width times the ratio, except that a bottleneck recast into a conv or
basic block takes its *mid* width times the ratio. Fixed parts (stem,
transitions, head) are kept, and their input layers rebuilt when the block
before them got narrower.
"""

import copy
from dataclasses import dataclass
from typing import Sequence

from torch import nn

from blocks import BLOCK_KINDS, BlockSpec, block_kind
from recast.adapt import adapt_input, output_shape
from recast.errors import PlanError
from recast.walker import Block, BlockChain


@dataclass(frozen=True)
class Step:
    """What happens to one teacher block: recast into ``spec``, or kept."""

    block: Block
    spec: BlockSpec | None
    in_channels: int
    out_channels: int

    @property
    def recast(self) -> bool:
        return self.spec is not None

    @property
    def target(self) -> str:
        return self.spec.kind if self.spec else self.block.kind


@dataclass
class Plan:
    """The whole student, as a list of steps over the teacher's chain."""

    chain: BlockChain
    target: str
    steps: list[Step]

    def recast_steps(self) -> list[Step]:
        return [s for s in self.steps if s.recast]

    def build_block(self, index: int) -> nn.Module:
        """A fresh student module for chain position ``index``."""
        step = self.steps[index]
        block = step.block
        if step.spec is not None:
            target = step.spec.build()
            if block.tail is None:
                return target
            return nn.Sequential(target, copy.deepcopy(block.tail))
        return adapt_input(block.module, block.in_shape, step.in_channels)

    def build_student(self) -> nn.Sequential:
        """The planned student, freshly initialised where blocks change."""
        return nn.Sequential(*(self.build_block(i) for i in range(len(self.steps))))


def make_plan(
    chain: BlockChain, target: str, width: float | Sequence[float] = 1.0
) -> Plan:
    """Map every recastable block of ``chain`` to a ``target`` block.

    ``width`` is one ratio for all recast blocks, or one per recast block.
    """
    if target not in BLOCK_KINDS:
        raise PlanError(
            f"unknown target kind '{target}'; choose one of: {', '.join(BLOCK_KINDS)}"
        )
    sources = [b for b in chain.blocks if b.recastable]
    if not sources:
        raise PlanError(
            f"{chain.model_name} has no recastable block (conv, basic, bottleneck "
            f"or dense); `recast inspect` shows what it is made of"
        )
    ratios = _ratios(width, len(sources))
    ratio_of = {b.index: r for b, r in zip(sources, ratios)}
    steps: list[Step] = []
    channels = chain.input_shape[1]
    shape = chain.input_shape
    for block in chain.blocks:
        if block.index in ratio_of:
            spec = _target_spec(block, target, ratio_of[block.index], channels)
            steps.append(Step(block, spec, channels, spec.out_channels))
            channels = spec.out_channels
            shape = (1, channels)
            continue
        module = adapt_input(block.module, block.in_shape, channels)
        new_shape = (1, channels, *block.in_shape[2:])
        shape = output_shape(module, new_shape)
        out = shape[1] if len(shape) > 1 else 0
        steps.append(Step(block, None, channels, out))
        channels = out
    return Plan(chain, target, steps)


def _ratios(width: float | Sequence[float], count: int) -> list[float]:
    ratios = [float(width)] * count if isinstance(width, (int, float)) else [
        float(w) for w in width]
    if len(ratios) != count:
        raise PlanError(
            f"--widths gives {len(ratios)} ratios but the model has {count} "
            f"recastable blocks; give one ratio per block or use --width"
        )
    for r in ratios:
        if not 0 < r <= 1:
            raise PlanError(f"width ratio {r} is outside (0, 1]; use e.g. --width 0.4")
    return ratios


def _target_spec(block: Block, target: str, ratio: float, in_channels: int) -> BlockSpec:
    try:
        return block_kind(target).target_spec(block, ratio, in_channels)
    except ValueError as exc:
        raise PlanError(str(exc)) from exc
