"""Find the widest uniform width ratio whose student meets a params or mults budget."""

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from recast.counting import Size
from recast.errors import PlanError

BISECTIONS = 14  # width-ratio resolution 1/16384: finer than channel rounding


Planned = TypeVar("Planned")


class BudgetUnmet(PlanError):
    """No width ratio gives a student within the budget."""


def search_ratio(attempt: Callable[[float], tuple[float, Planned]], asked: float,
                 measure: str) -> tuple[float, float, Planned]:
    """(ratio, obtained share, what ``attempt`` planned) for the widest ratio whose
    share of the teacher's ``measure`` is at most ``asked``.

    ``attempt(ratio)`` gives the student's share at that ratio; the share grows
    with the ratio (bar kept blocks), so bisection finds it.
    """
    if not 0 < asked <= 1:
        raise PlanError(f"a {measure} budget of {asked} is outside (0, 1]; e.g. "
                        f"--budget-{measure} 0.25 asks for 4x fewer")
    low, high = 0.0, 1.0
    best: tuple[float, float, Planned] | None = None
    got, planned = attempt(1.0)
    if got <= asked:
        best = (1.0, got, planned)
    for _ in range(0 if best else BISECTIONS):
        ratio = (low + high) / 2
        got, planned = attempt(ratio)
        if got <= asked:
            low, best = ratio, (ratio, got, planned)
            if got >= asked * 0.99:
                break  # close enough: channel rounding decides the rest
        else:
            high = ratio
    if best is None:
        raise BudgetUnmet(f"no width meets a {measure} budget of {asked}: the narrowest "
                        f"student keeps {got:.3f} of the teacher's {measure} (its fixed "
                        f"parts); ask for at least --budget-{measure} {got:.2f}")
    return best


def budgeted_steps(plan_at: Callable[[float], list[Any]], teacher_sizes: Sequence[Size],
                   measure: str, asked: float) -> tuple[list[Any], float, dict[str, Any]]:
    """The steps ``plan_at(ratio)`` plans (each with ``params`` and ``mults``) at the
    widest uniform ratio meeting the budget, that ratio, and the budget's record
    (asked, got, width) for the plan."""
    teacher = sum(s[0 if measure == "params" else 1] for s in teacher_sizes)
    tried: list[tuple[float, list[Any]]] = []

    def attempt(ratio: float) -> tuple[float, list[Any]]:
        steps = plan_at(ratio)
        tried.append((ratio, steps))
        if not any(s.recast for s in steps):  # compresses nothing: a narrower ratio may
            return math.inf, steps            # give targets small enough to recast
        return sum(getattr(s, measure) for s in steps) / teacher, steps

    try:
        ratio, got, steps = search_ratio(attempt, asked, measure)
    except BudgetUnmet:
        if any(s.recast for _, steps in tried for s in steps):
            raise
        # no ratio recasts a block: the caller refuses the plan, saying why each was kept
        ratio, steps = tried[-1]
        return steps, ratio, {"measure": measure, "asked": asked}
    budget: dict[str, Any] = {"measure": measure, "asked": asked, "got": round(got, 4),
                              "width": round(ratio, 4)}
    if ratio == 1.0 and got < asked:
        budget["note"] = f"even width 1 keeps only {got:.3f} of the teacher's {measure}"
    return steps, ratio, budget
