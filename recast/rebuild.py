"""Fresh stand-ins for a block whose input got narrower: the paper's "next block".

When the block before a teacher block is recast narrower and that block's own
graph cannot be sliced to read fewer channels, it is rebuilt as a fresh block
that reads the new width and gives the teacher's output. The paper rebuilds it
as its own kind. For blocks whose kind is not a target kind, or whose own kind
would come out bigger than the teacher's block (a grouped or depthwise block,
since a rebuilt one is dense), the planner takes the first cheaper kind that
fits instead, and the step says so: a kept block never grows in silence.
"""

from dataclasses import dataclass

from blocks import BLOCK_KINDS, BlockSpec, block_kind
from recast.counting import Size, spec_size
from recast.fit import map_misfit
from recast.walker import Block

# cheaper stand-ins, in order of preference, when the block's own kind is too big
CHEAPER_KINDS = ("dwconv", "mbconv", "conv")


def rebuild_spec(block: Block, in_channels: int) -> BlockSpec:
    """A fresh block standing in for ``block`` on a new input width: its own kind,
    else an mbconv for an inverted residual, else a conv block."""
    kind = block.kind if block.kind in BLOCK_KINDS else \
        "mbconv" if block.kind == "inverted_residual" else "conv"
    return block_kind(kind).rebuild(block, in_channels)


@dataclass(frozen=True)
class Rebuilt:
    """The stand-in a plan keeps, its size, and what the usual kind would have been."""

    spec: BlockSpec
    params: int
    mults: int
    instead_of: str | None = None  # the usual kind, when it was bigger or did not fit
    fits: bool = True  # no bigger than the teacher's block

    def note(self, channels: int) -> str:
        """How the plan's step table says it."""
        said = f"rebuilt as a fresh {self.spec.kind} block reading {channels} channels"
        if not self.fits:
            return f"{said} (every stand-in is bigger than the teacher's block; this is " \
                   f"the smallest)"
        if self.instead_of:
            return f"{said} (a fresh {self.instead_of} block would be bigger than the " \
                   f"teacher's)"
        return said


def stand_in(block: Block, in_channels: int, teacher: Size) -> Rebuilt:
    """The usual stand-in (:func:`rebuild_spec`) if it is no bigger than the teacher's
    block (``teacher``: its params and mults); else the first of
    :data:`CHEAPER_KINDS` that is; else the smallest of them. A kind whose output
    map would differ in size from the block's is never taken."""
    shape = (1, in_channels, *block.in_shape[2:])
    usual = rebuild_spec(block, in_channels)
    candidates = [usual] + [block_kind(k).rebuild(block, in_channels)
                            for k in CHEAPER_KINDS if k != usual.kind]
    sized: list[tuple[Rebuilt, bool]] = []  # each candidate, and whether its map fits
    for spec in candidates:
        params, mults, out_shape = spec_size(spec, shape)
        sized.append((Rebuilt(spec, params, mults, None if spec is usual else usual.kind,
                              params <= teacher[0] and mults <= teacher[1]),
                      map_misfit(block, out_shape) is None))
    fitting = [rebuilt for rebuilt, map_fits in sized if map_fits]
    if not fitting:  # no kind gives the block's map size: the usual one, as the paper does
        return sized[0][0]
    return next((r for r in fitting if r.fits), None) or min(
        fitting, key=lambda r: max(r.params / max(teacher[0], 1), r.mults / max(teacher[1], 1)))
