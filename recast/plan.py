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
fresh block of its own kind reading the narrower input (the paper's rule for
the block after a recast one). A budget picks, by bisection, the one width
ratio whose student meets a params or mults ratio against the teacher.
"""

import copy
from dataclasses import dataclass, field
from typing import Any, Sequence

from torch import nn

from blocks import BLOCK_KINDS, BlockSpec, block_kind
from recast.adapt import adapt_input
from recast.errors import PlanError
from recast.counting import Size, module_size, spec_size
from recast.walker import Block, BlockChain

BISECTIONS = 14  # width-ratio resolution 1/16384: finer than channel rounding


@dataclass(frozen=True)
class Step:
    """What happens to one teacher block: recast into ``spec``, or kept.

    A kept block has no spec unless it had to be rebuilt as a fresh block of its
    own kind to read a narrower input; ``kept_reason`` says why a recastable
    block was kept. ``params``/``mults`` are the student block's.
    """

    block: Block
    spec: BlockSpec | None
    in_channels: int
    out_channels: int
    kept_reason: str | None = None
    params: int = 0
    mults: int = 0

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
    budget_mults: float | None = None,
) -> Plan:
    """Map every recastable block of ``chain`` to a ``target`` block.

    ``width`` is one ratio for all recast blocks, or one per recast block (1.0
    if not given). ``budget_params``/``budget_mults`` = R (0.25: 4x fewer than
    the teacher) instead choose the one ratio that meets R. ``allow_bigger``
    recasts blocks whose target is bigger than their source.
    """
    if target not in BLOCK_KINDS:
        raise PlanError(
            f"unknown target kind '{target}'; choose one of: {', '.join(BLOCK_KINDS)}"
        )
    sources = [b for b in chain.blocks if b.recastable]
    if not sources:
        raise PlanError(
            f"{chain.model_name} has no recastable block (conv, basic, bottleneck, dense "
            f"or inverted residual); `recast inspect` shows what it is made of"
        )
    budgets = {k: v for k, v in (("params", budget_params), ("mults", budget_mults))
               if v is not None}
    if budgets and width is not None or len(budgets) > 1:
        raise PlanError("--width/--widths, --budget-params and --budget-mults each set the "
                        "student's width; give only one of them")
    sizes = [module_size(b.module, b.in_shape) for b in chain.blocks]
    cache: dict[tuple[int, int], Step] = {}
    if budgets:
        return _budgeted(chain, target, sources, *budgets.popitem(), allow_bigger, sizes,
                         cache)
    ratios = _ratios(1.0 if width is None else width, len(sources))
    steps = _steps(chain, target, dict(zip((b.index for b in sources), ratios)),
                   allow_bigger, sizes, cache)
    plan = Plan(chain, target, steps, _totals(steps, sizes))
    student, teacher = plan.size["student"], plan.size["teacher"]
    bigger = [k for k in ("params", "mults") if student[k] > teacher[k]]
    if bigger and not allow_bigger:
        raise PlanError(
            f"the planned student has more {' and '.join(bigger)} than the teacher "
            f"({', '.join(f'{student[k]:,} > {teacher[k]:,}' for k in bigger)}); use a "
            f"smaller --width or pass --allow-bigger")
    return plan


def _steps(chain: BlockChain, target: str, ratio_of: dict[int, float], allow_bigger: bool,
           sizes: list[Size], cache: dict[tuple[int, int], Step]) -> list[Step]:
    steps: list[Step] = []
    channels = chain.input_shape[1]
    for block in chain.blocks:
        reason = None
        if block.index in ratio_of:
            spec = _target_spec(block, target, ratio_of[block.index], channels)
            params, mults, _ = spec_size(spec, (1, channels, *block.in_shape[2:]))
            teacher = sizes[block.index]
            more = [f"{k} {a:,} > {b:,}" for k, a, b in
                    (("params", params, teacher[0]), ("mults", mults, teacher[1])) if a > b]
            if allow_bigger or not more:
                steps.append(Step(block, spec, channels, spec.out_channels,
                                  params=params, mults=mults))
                channels = spec.out_channels
                continue
            reason = f"{target} target would be bigger ({', '.join(more)})"
        key = (block.index, channels)
        if key not in cache:
            cache[key] = _kept(block, channels, sizes[block.index])
        step = cache[key]
        if reason is not None:
            step = Step(step.block, step.spec, step.in_channels, step.out_channels,
                        reason + (step.kept_reason or ""), step.params, step.mults)
        steps.append(step)
        channels = step.out_channels
    return steps


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
        spec = rebuild_spec(block, channels)
        params, mults, _ = spec_size(spec, (1, channels, *block.in_shape[2:]))
        return Step(block, spec, channels, spec.out_channels,
                    f"; rebuilt as a fresh {spec.kind} block reading {channels} channels",
                    params, mults)
    params, mults, shape = module_size(module, (1, channels, *block.in_shape[2:]))
    return Step(block, None, channels, shape[1] if len(shape) > 1 else 0,
                params=params, mults=mults)


def with_tail(module: nn.Module, block: Block) -> nn.Module:
    """``module`` followed by a copy of ``block``'s tail (its pooling), if it has one."""
    return nn.Sequential(module, copy.deepcopy(block.tail)) if block.tail is not None else module


def rebuild_spec(block: Block, in_channels: int) -> BlockSpec:
    """A fresh block standing in for ``block`` on a new input width: its own kind,
    else an mbconv for an inverted residual, else a conv block."""
    kind = block.kind if block.kind in BLOCK_KINDS else \
        "mbconv" if block.kind == "inverted_residual" else "conv"
    return block_kind(kind).rebuild(block, in_channels)


def _budgeted(chain: BlockChain, target: str, sources: list[Block], measure: str,
              asked: float, allow_bigger: bool, sizes: list[Size],
              cache: dict[tuple[int, int], Step]) -> Plan:
    """The widest uniform ratio whose student keeps at most ``asked`` of the teacher's
    ``measure`` (bisection: the cost grows with the ratio, bar kept blocks)."""
    if not 0 < asked <= 1:
        raise PlanError(f"a {measure} budget of {asked} is outside (0, 1]; e.g. "
                        f"--budget-{measure} 0.25 asks for 4x fewer")
    index = 0 if measure == "params" else 1
    teacher = sum(s[index] for s in sizes)

    def attempt(ratio: float) -> tuple[float, list[Step]]:
        steps = _steps(chain, target, {b.index: ratio for b in sources}, allow_bigger,
                       sizes, cache)
        return sum(getattr(s, measure) for s in steps) / teacher, steps

    low, high = 0.0, 1.0
    best: tuple[float, float, list[Step]] | None = None
    got, steps = attempt(1.0)
    if got <= asked:
        best = (1.0, got, steps)
    for _ in range(0 if best else BISECTIONS):
        ratio = (low + high) / 2
        got, steps = attempt(ratio)
        if got <= asked:
            low, best = ratio, (ratio, got, steps)
            if got >= asked * 0.99:
                break  # close enough: channel rounding decides the rest
        else:
            high = ratio
    if best is None:
        raise PlanError(f"no width meets a {measure} budget of {asked}: the narrowest "
                        f"student keeps {got:.3f} of the teacher's {measure} (its fixed "
                        f"parts); ask for at least --budget-{measure} {got:.2f}")
    ratio, got, steps = best
    budget: dict[str, Any] = {"measure": measure, "asked": asked, "got": round(got, 4),
                              "width": round(ratio, 4)}
    if ratio == 1.0 and got < asked:
        budget["note"] = f"even width 1 keeps only {got:.3f} of the teacher's {measure}"
    return Plan(chain, target, steps, _totals(steps, sizes), budget)


def _totals(steps: list[Step], sizes: list[Size]) -> dict[str, dict[str, int]]:
    return {"teacher": {"params": sum(s[0] for s in sizes), "mults": sum(s[1] for s in sizes)},
            "student": {"params": sum(s.params for s in steps),
                        "mults": sum(s.mults for s in steps)}}


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
