"""Student surgery: put a target block in, and make what follows it fit again.

The student starts as a copy of the teacher's blocks. Installing the target
of block i (warm-started where its kind can be) may change block i's output
width; then the blocks after it are rebuilt to read the new width until the
widths match the teacher's again (the paper's "dimension mismatch" rule: the
next recastable block becomes a fresh block of its own kind, a fixed part gets
its input layers rebuilt). A block the plan keeps is rebuilt as the plan says
(input layers, or the fresh block its step names), so the student is the
planned one.
``kept`` records, per block, which teacher channels its output holds, so warm
starts can slice matching weights. A narrower target with no warm start (dense ->
basic) holds none, unless the closed-form start will fit it to some: then it keeps
the channels the next teacher block reads most, and a kept next block (a
transition, the head) is sliced to them.
"""

import copy
from collections.abc import Collection

import torch
from torch import Tensor, nn

from recast.adapt import adapt_input, most_read_channels, output_shape
from recast.errors import RecastError
from recast.plan import Plan, with_tail
from recast.rebuild import rebuild_spec
from recast.solve import can_solve
from recast.warmstart import warm_start


class StudentSurgery:
    """The student's blocks while the recast changes them, one block at a time."""

    def __init__(self, plan: Plan, init: str, device: torch.device,
                 fit_steps: Collection[int] = ()) -> None:
        self.plan = plan
        self.warm = init == "teacher"
        # the steps the closed form fits: their targets get teacher channels though no
        # warm start fills them, only when what follows is sliced to them too (warm)
        self.choose_channels = frozenset(fit_steps) if self.warm else frozenset()
        self.device = device
        chain = plan.chain
        self.blocks = nn.ModuleList(copy.deepcopy(b.module) for b in chain.blocks).to(device)
        # teacher channel indices each student block's output holds (warm start)
        self.kept: dict[int, Tensor] = {}

    def install(self, index: int) -> tuple[bool, int]:
        """Put block ``index``'s target (warm-started if it can be) into the student.

        Returns whether it was warm-started and the last block rebuilt after it:
        where the step's loss is taken.
        """
        plan_step = self.plan.steps[index]
        block = plan_step.block
        target = self.plan.build_block(index)
        warm = False
        if self.warm:
            kept = warm_start(block, target, self.input_channels(index),
                              target_kind=plan_step.target)
            if kept is not None:
                self.kept[index] = kept
                warm = True
        if not warm and index in self.choose_channels and can_solve(target) \
                and plan_step.out_channels < block.out_channels:
            chosen = self._read_most(index, plan_step.out_channels)
            if chosen is not None:
                self.kept[index] = chosen
        self.blocks[index] = target.to(self.device)
        return warm, self.rebuild_after(index, plan_step.out_channels)

    def _read_most(self, index: int, count: int) -> Tensor | None:
        """The ``count`` output channels of teacher block ``index`` its next block reads most."""
        blocks = self.plan.chain.blocks
        if index + 1 >= len(blocks):
            return None
        return most_read_channels(blocks[index + 1].module, blocks[index].out_channels, count)

    def input_channels(self, index: int) -> Tensor:
        """Teacher channels the input of block ``index`` holds, in order.

        After a block that was not warm-started (a fresh target: no channel of it
        is any teacher channel) any order is as good as another, so the first
        ones of the width the student's input has.
        """
        if index - 1 in self.kept:
            return self.kept[index - 1]
        return torch.arange(self.plan.steps[index].in_channels)

    def rebuild_after(self, index: int, channels: int) -> int:
        """Rebuild blocks after ``index`` until widths match the teacher again.

        Returns the index of the last rebuilt block.
        """
        chain = self.plan.chain
        position = index
        while channels != chain.blocks[position].out_channels:
            position += 1
            if position >= len(chain.blocks):
                raise RecastError("the recast student never returns to the teacher's "
                                  "width; the head cannot be rebuilt")
            block = chain.blocks[position]
            keep = self.kept.get(position - 1) if self.warm else None
            step = self.plan.steps[position]
            if step.recast:  # a temporary block until its own step replaces it
                spec = rebuild_spec(block, channels)
                module = with_tail(spec.build(), block)
            else:  # a kept block: what the plan keeps, the teacher's weights sliced
                spec = step.spec
                module = self.plan.build_block(position) if spec is not None else \
                    adapt_input(block.module, block.in_shape, channels, keep)
            if spec is not None and keep is not None:
                warm_start(block, module, keep, keep_outputs=True, target_kind=spec.kind)
            self.blocks[position] = module.to(self.device)
            self.kept.pop(position, None)
            channels = output_shape(module, (1, channels, *block.in_shape[2:]))[1]
        return position

    def replace_all(self, blocks: list[nn.Module]) -> None:
        """Every block at once (the all-at-once pass builds the whole student)."""
        self.blocks = nn.ModuleList(blocks).to(self.device)

    def train_only(self, first: int, last: int) -> None:
        """Blocks ``first`` .. ``last`` in train mode, the rest in eval mode."""
        for i, module in enumerate(self.blocks):
            module.train(first <= i <= last)



def run_blocks(blocks: nn.ModuleList, x: Tensor, first: int, last: int) -> Tensor:
    """Blocks ``first`` .. ``last`` in order."""
    for block in blocks[first:last + 1]:
        x = block(x)
    return x
