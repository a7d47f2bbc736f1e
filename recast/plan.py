"""Plan a student: which target block replaces each source block, how wide.

Widths follow the recasting paper: a target's output width is the source's
output width times the ratio, except that a bottleneck recast into a conv or
basic block takes its *mid* width times the ratio. Fixed parts (stem,
transitions, head) are kept, and their input layers rebuilt when the block
before them got narrower.

Never bigger in silence: a target with more params or mults than its source
is not used (the block is kept, and its step says why) unless
``allow_bigger``. A kept block keeps the teacher's output width; when the block
before it was narrowed, its input layers are rebuilt (as a fixed part's are)
or, where its own graph cannot be (a residual add on its input), it becomes a
fresh block reading the narrower input: of its own kind (the paper's rule for
the block after a recast one), or a cheaper kind where that would be bigger
(recast/rebuild.py). A plan that would keep every block is refused. A budget
picks the width ratio whose student meets a params or mults ratio (budget.py).
"""

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from torch import nn

from blocks import BLOCK_KINDS, BlockSpec
from recast.adapt import adapt_input
from recast.budget import budgeted_steps
from recast.counting import Size, module_size, spec_size
from recast.errors import PlanError
from recast.fit import keep_output_width, map_misfit, unreadable
from recast.rebuild import stand_in
from recast.walker import Block, BlockChain
from recast.widths import ratios, target_spec

# blocks of token sequences (ViT, Swin): no feature-map target reads them
TOKEN_KINDS = ("attention", "mlp")

# why a recastable block was kept: its target would cost more, or cannot give its shape
KeptBecause = Literal["bigger", "shape"]


@dataclass(frozen=True)
class Step:
    """What happens to one teacher block: recast into ``spec``, or kept.

    A kept block has no spec unless it had to be rebuilt as a fresh block (of
    its own kind, or a cheaper one) to read a narrower input; ``kept_reason``
    says why a recastable block was kept and ``kept_because`` which kind of
    reason it is (its target would be ``bigger``, or could not give the block's
    output ``shape``). ``params``/``mults`` are the student block's.
    """

    block: Block
    spec: BlockSpec | None
    in_channels: int
    out_channels: int
    kept_reason: str | None = None
    params: int = 0
    mults: int = 0
    note: str | None = None  # how a recast step was shaped, e.g. its output width kept
    kept_because: KeptBecause | None = None

    @property
    def recast(self) -> bool:
        return self.spec is not None and self.kept_reason is None

    @property
    def target(self) -> str:
        return self.spec.kind if self.spec else self.block.kind


@dataclass
class Plan:
    """The whole student, as a list of steps over the teacher's chain.

    ``size`` holds teacher and student {params, mults}; ``budget`` the asked
    and obtained ratio when the width came from a budget.
    """

    chain: BlockChain
    target: str
    steps: list[Step]
    size: dict[str, dict[str, int]] = field(default_factory=dict)
    budget: dict[str, Any] | None = None
    rounding: dict[str, Any] | None = None  # --round-channels N and what it cost

    def recast_steps(self) -> list[Step]:
        return [s for s in self.steps if s.recast]

    def kept_steps(self) -> list[Step]:
        """Recastable blocks the plan keeps (a target would have been bigger)."""
        return [s for s in self.steps if s.kept_reason is not None]

    def build_block(self, index: int) -> nn.Module:
        """A fresh student module for chain position ``index``."""
        step = self.steps[index]
        block = step.block
        if step.spec is not None:
            return with_tail(step.spec.build(), block)
        return adapt_input(block.module, block.in_shape, step.in_channels)

    def build_student(self) -> nn.Sequential:
        """The planned student, freshly initialised where blocks change."""
        return nn.Sequential(*(self.build_block(i) for i in range(len(self.steps))))


def make_plan(
    chain: BlockChain, target: str, width: float | Sequence[float] | None = None, *,
    allow_bigger: bool = False, budget_params: float | None = None,
    budget_mults: float | None = None, include_stem: bool = False,
    round_channels: int | None = None,
) -> Plan:
    """Map every recastable block of ``chain`` to a ``target`` block.

    ``width`` is one ratio for all recast blocks, or one per recast block (1.0
    if not given). ``budget_params``/``budget_mults`` = R (0.25: 4x fewer than
    the teacher) instead choose the one ratio that meets R. ``allow_bigger``
    recasts blocks whose target is bigger than their source; ``include_stem``
    recasts the stem blocks too; ``round_channels`` = N rounds every target
    width to a multiple of N.
    """
    if target not in BLOCK_KINDS:
        raise PlanError(
            f"unknown target kind '{target}'; choose one of: {', '.join(BLOCK_KINDS)}"
        )
    sources = [b for b in chain.blocks if b.recastable or include_stem and _is_map_stem(b)]
    if not sources:
        kinds = sorted({b.kind for b in chain.blocks})
        tokens = [k for k in kinds if k in TOKEN_KINDS]
        raise PlanError(
            f"{chain.model_name} has no recastable block: " + (
                f"its {' and '.join(tokens)} blocks work on tokens (a transformer), and "
                f"recast replaces blocks of feature maps; they are kept" if tokens else
                f"its blocks are {', '.join(kinds)}, none a map-in, map-out block") +
            "; `recast inspect` shows what it is made of")
    budgets = {k: v for k, v in (("params", budget_params), ("mults", budget_mults))
               if v is not None}
    if budgets and width is not None or len(budgets) > 1:
        raise PlanError("--width/--widths, --budget-params and --budget-mults each set the "
                        "student's width; give only one of them")
    if round_channels is not None and round_channels < 1:
        raise PlanError(f"--round-channels {round_channels} must be a whole number of "
                        f"channels of at least 1, e.g. 8")
    sizes = [module_size(b.module, b.in_shape) for b in chain.blocks]
    planner = _Planner(chain, target, allow_bigger, sizes, round_channels)
    if budgets:
        steps, ratio, budget = budgeted_steps(
            lambda r: planner.steps({b.index: r for b in sources}), sizes, *budgets.popitem())
        plan = Plan(chain, target, steps, _totals(steps, sizes), budget)
        ratio_of = {b.index: ratio for b in sources}
    else:
        ratio_of = dict(zip((b.index for b in sources),
                            ratios(1.0 if width is None else width, len(sources))))
        steps = planner.steps(ratio_of)
        plan = Plan(chain, target, steps, _totals(steps, sizes))
    if not plan.recast_steps():
        raise PlanError(_nothing_recast(plan))
    if round_channels and round_channels > 1:
        plan.rounding = planner.rounding_cost(ratio_of)
    student, teacher = plan.size["student"], plan.size["teacher"]
    bigger = [k for k in ("params", "mults") if student[k] > teacher[k]]
    if bigger and not allow_bigger:
        raise PlanError(
            f"the planned student has more {' and '.join(bigger)} than the teacher "
            f"({', '.join(f'{student[k]:,} > {teacher[k]:,}' for k in bigger)}); use a "
            f"smaller --width or pass --allow-bigger")
    return plan


def _nothing_recast(plan: Plan) -> str:
    """Why a plan that keeps every block is refused (it would train the teacher
    again), and what may change that."""
    kept = plan.kept_steps()
    reasons = [s.kept_reason.split(";")[0] for s in kept if s.kept_reason]
    why = (f": {reasons[0]}" if reasons else "") + \
        (f", and so on for all {len(reasons)}" if len(reasons) > 1 else "")
    advice = (f"{'another' if plan.budget else 'a smaller width or another'} --target may "
              f"recast some (dwconv or mbconv suit depthwise and grouped blocks), or pass "
              f"--allow-bigger"
              if any(s.kept_because == "bigger" for s in kept) else
              "`recast inspect` shows what its blocks are")
    return (f"no block of {plan.chain.model_name} would be recast into {plan.target} "
            f"blocks{why}; {advice}")


class _Planner:
    """Plans the steps for given ratios. What does not depend on the ratio (kept
    blocks, whether a fixed part reads a width) is cached across the bisections of
    a budget."""

    def __init__(self, chain: BlockChain, target: str, allow_bigger: bool,
                 sizes: list[Size], multiple: int | None) -> None:
        self.chain, self.target, self.allow_bigger = chain, target, allow_bigger
        self.sizes, self.multiple = sizes, multiple
        self.kept: dict[tuple[int, int], Step] = {}
        self.unreadable: dict[tuple[int, int], str | None] = {}

    def steps(self, ratio_of: dict[int, float], rounded: bool = True) -> list[Step]:
        """One step per block; ``rounded=False`` plans without channel rounding."""
        multiple = self.multiple if rounded else None
        steps: list[Step] = []
        channels = self.chain.input_shape[1]
        for block in self.chain.blocks:
            step, why = (self._recast(block, channels, ratio_of[block.index], multiple)
                         if block.index in ratio_of else (None, None))
            if step is None:
                step = self._kept(block, channels, why)
            steps.append(step)
            channels = step.out_channels
        return steps

    def _recast(self, block: Block, channels: int, ratio: float,
                multiple: int | None) -> tuple[Step | None, tuple[KeptBecause, str] | None]:
        """The recast step of ``block``, or None and why the block is kept."""
        spec = target_spec(block, self.target, ratio, channels, multiple)
        spec, note = self._fit_next(block, spec)
        params, mults, shape = spec_size(spec, (1, channels, *block.in_shape[2:]))
        misfit = map_misfit(block, shape)
        if misfit:
            return None, ("shape", misfit)
        teacher = self.sizes[block.index]
        more = [f"{k} {a:,} > {b:,}" for k, a, b in
                (("params", params, teacher[0]), ("mults", mults, teacher[1])) if a > b]
        if more and not self.allow_bigger:
            return None, ("bigger", f"{self.target} target would be bigger ({', '.join(more)})")
        return Step(block, spec, channels, spec.out_channels, params=params, mults=mults,
                    note=note), None

    def _fit_next(self, block: Block, spec: BlockSpec) -> tuple[BlockSpec, str | None]:
        """``spec``, or ``spec`` at the teacher's output width when the fixed part after
        ``block`` cannot be rebuilt to read a narrower input."""
        index = block.index + 1
        if index >= len(self.chain.blocks) or spec.out_channels == block.out_channels:
            return spec, None
        following = self.chain.blocks[index]
        if following.recastable:
            return spec, None
        key = (index, spec.out_channels)
        if key not in self.unreadable:
            self.unreadable[key] = unreadable(following, spec.out_channels)
        reason = self.unreadable[key]
        return (spec, None) if reason is None else keep_output_width(spec, block, following,
                                                                     reason)

    def _kept(self, block: Block, channels: int,
              why: tuple[KeptBecause, str] | None) -> Step:
        key = (block.index, channels)
        if key not in self.kept:
            self.kept[key] = _kept(block, channels, self.sizes[block.index])
        step = self.kept[key]
        if why is None:
            return step
        because, reason = why
        return replace(step, kept_reason=reason + (step.kept_reason or ""),
                       kept_because=because)

    def rounding_cost(self, ratio_of: dict[int, float]) -> dict[str, Any]:
        """What the same ratios plan to without rounding, to show rounding's cost."""
        unrounded = _totals(self.steps(ratio_of, rounded=False), self.sizes)["student"]
        return {"multiple": self.multiple, "student_unrounded": unrounded}


def _kept(block: Block, channels: int, teacher: Size) -> Step:
    """A block the plan keeps, reading ``channels``; its spec set if it is rebuilt.

    ``kept_reason`` carries only the rebuild note here; the caller prefixes why.
    """
    if channels == block.in_channels:
        params, mults, shape = teacher
        return Step(block, None, channels, shape[1] if len(shape) > 1 else 0,
                    params=params, mults=mults)
    try:
        module = adapt_input(block.module, block.in_shape, channels)
    except PlanError:
        if not block.recastable:
            raise
        rebuilt = stand_in(block, channels, teacher)
        return Step(block, rebuilt.spec, channels, rebuilt.spec.out_channels,
                    f"; {rebuilt.note(channels)}", rebuilt.params, rebuilt.mults)
    params, mults, shape = module_size(module, (1, channels, *block.in_shape[2:]))
    return Step(block, None, channels, shape[1] if len(shape) > 1 else 0,
                params=params, mults=mults)


def with_tail(module: nn.Module, block: Block) -> nn.Module:
    """``module`` followed by a copy of ``block``'s tail (its pooling), if it has one."""
    return nn.Sequential(module, copy.deepcopy(block.tail)) if block.tail is not None else module


def _totals(steps: list[Step], sizes: list[Size]) -> dict[str, dict[str, int]]:
    return {"teacher": {"params": sum(s[0] for s in sizes), "mults": sum(s[1] for s in sizes)},
            "student": {"params": sum(s.params for s in steps),
                        "mults": sum(s.mults for s in steps)}}


def _is_map_stem(block: Block) -> bool:
    """A stem block of feature maps (``--include-stem`` makes it a source)."""
    return block.kind == "stem" and len(block.in_shape) == len(block.out_shape) == 4
