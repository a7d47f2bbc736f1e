"""The pruning + KD baseline of scripts/bench_cifar10.py: Torch-Pruning's L1 pruning
of the teacher to the student's width (or, for a transformation pair, to its
parameter count), then Hinton KD from the teacher at the same budget.
"""

import copy
from typing import Any

import torch

from recast.baselines import train_student


def prune_l1(teacher: torch.nn.Module, ratio: float, example: torch.Tensor) -> torch.nn.Module:
    """A copy of the teacher with `ratio` of each layer's channels removed by L1 norm."""
    import torch_pruning as tp

    model = copy.deepcopy(teacher).requires_grad_(True)
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1:]
    pruner = tp.pruner.MagnitudePruner(model, example,
                                       importance=tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=ratio, ignored_layers=head)
    pruner.step()
    return model


def pruning_ratio(teacher: torch.nn.Module, width: float, target_params: int,
                  example: torch.Tensor) -> float:
    """The channel ratio of the plan when it shrinks the teacher; otherwise (a
    transformation pair, width 1) the ratio whose pruned net has the student's size,
    so the competitor is compared at equal parameters rather than left unpruned."""
    if width < 1.0:
        return 1.0 - width

    def gap(ratio: float) -> int:
        pruned = prune_l1(teacher, ratio, example)
        return sum(p.numel() for p in pruned.parameters()) - target_params

    low, high = 0.0, 0.95
    if gap(high) > 0:
        raise SystemExit(f"pruning {high:.0%} of the channels still leaves more than the "
                         f"student's {target_params:,} params: no matching ratio")
    for _ in range(12):  # bisection: parameters fall as the ratio grows
        middle = (low + high) / 2
        low, high = (middle, high) if gap(middle) > 0 else (low, middle)
    return round(min((low, high), key=lambda ratio: abs(gap(ratio))), 4)


def run_prune_kd(plan, teacher, loaders, budget, width, seed, progress) -> dict[str, Any]:
    torch.manual_seed(seed)
    example = torch.randn(1, *plan.chain.input_shape[1:])
    target = sum(p.numel() for p in plan.build_student().parameters())
    ratio = pruning_ratio(teacher, width, target, example)
    model = prune_l1(teacher, ratio, example)
    curve: list = []
    result = train_student("kd", model, teacher, *loaders, budget, torch.device("cpu"),
                           progress, curve=curve)
    result["curve"] = curve
    result["pruning_ratio"] = ratio
    return result
