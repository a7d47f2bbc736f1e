"""How wide each target is: the ratios a user gives, and hardware-friendly rounding.

Kept apart from the planner so the one rule for a target's widths (the kind's
own ``target_spec``, then ``--round-channels``) reads in one place.
"""

from collections.abc import Sequence
from dataclasses import replace

from blocks import BlockSpec, block_kind
from recast.errors import PlanError
from recast.walker import Block


def ratios(width: float | Sequence[float], count: int) -> list[float]:
    """One ratio per recast block from ``--width`` or ``--widths``, each in (0, 1]."""
    given = [float(width)] * count if isinstance(width, (int, float)) else [
        float(w) for w in width]
    if len(given) != count:
        raise PlanError(
            f"--widths gives {len(given)} ratios but the model has {count} "
            f"recastable blocks; give one ratio per block or use --width"
        )
    for r in given:
        if not 0 < r <= 1:
            raise PlanError(f"width ratio {r} is outside (0, 1]; use e.g. --width 0.4")
    return given


def round_to(channels: int, multiple: int) -> int:
    """``channels`` rounded to the nearest multiple of ``multiple``, at least one multiple."""
    return max(multiple, multiple * round(channels / multiple))


def rounded(spec: BlockSpec, multiple: int | None) -> BlockSpec:
    """``spec`` with its widths rounded to multiples of ``multiple`` (GPUs and NPUs
    run channel counts of 8 or 16 fastest); a dense block rounds its growth, so its
    output stays input + layers x growth."""
    if not multiple or multiple == 1:
        return spec
    if spec.growth:
        layers = (spec.out_channels - spec.in_channels) // spec.growth
        growth = round_to(spec.growth, multiple)
        return replace(spec, growth=growth, out_channels=spec.in_channels + layers * growth)
    mid = round_to(spec.mid_channels, multiple) if spec.mid_channels else spec.mid_channels
    return replace(spec, out_channels=round_to(spec.out_channels, multiple), mid_channels=mid)


def target_spec(block: Block, target: str, ratio: float, in_channels: int,
                multiple: int | None = None) -> BlockSpec:
    """The ``target`` block standing in for ``block`` at width ``ratio``."""
    try:
        spec = block_kind(target).target_spec(block, ratio, in_channels)
    except ValueError as exc:
        raise PlanError(str(exc)) from exc
    return rounded(spec, multiple)
