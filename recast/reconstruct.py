"""Channel-pruning reconstruction of a warm-started target (He et al. 2017; ThiNet).

A warm start copies a teacher conv's filters for the input channels the
student kept: the dropped inputs' share of every output is lost, and each
narrowed step compounds it. Re-solving the target's input convs by least
squares on the student's kept inputs, to give the teacher convs' outputs from
their full inputs, puts back what a linear map of the kept channels can. The
filters keep their teacher channels, so the target's BN (the teacher's) reads
what it was estimated on, up to the fit's error. A conv block started from a
basic block's shortcut (its 1x1 weights in a 3x3 centre tap) matches no teacher
conv and is left as it is.
"""

import torch
from torch import Tensor, fx, nn

from blocks import BasicBlock, ConvBlock
from blocks.weights import conv_bn_pairs
from recast.modes import held_in_eval
from recast.solve import refit_conv


def copied_rows(weight: Tensor, teacher_weight: Tensor, in_idx: Tensor) -> Tensor | None:
    """The teacher filters (sliced to the ``in_idx`` inputs) that ``weight``'s filters
    are copies of, in order; None if any filter is no such copy."""
    if teacher_weight.shape[2:] != weight.shape[2:] or len(in_idx) != weight.shape[1] \
            or teacher_weight.shape[1] <= int(in_idx.max()):  # it does not read this input
        return None
    teacher = teacher_weight[:, in_idx.to(teacher_weight.device)].flatten(1)
    distance, rows = torch.cdist(weight.flatten(1), teacher,
                                 compute_mode="donot_use_mm_for_euclid_dist").min(dim=1)
    tolerance = 1e-6 * (1.0 + float(teacher.norm(dim=1).max()))
    return rows if bool((distance <= tolerance).all()) else None


def _conv_outputs(source: fx.GraphModule, convs: list[nn.Conv2d],
                  inputs: Tensor) -> list[Tensor]:
    """What each of ``convs`` inside ``source`` outputs on its first call, from one run
    of ``source`` on ``inputs`` (after a pre-activation BN-ReLU too). Copies: an
    in-place ReLU after a conv, or on the inputs, must not change them."""
    seen: dict[nn.Conv2d, Tensor] = {}

    def keep(module: nn.Module, args, output: Tensor) -> None:
        seen.setdefault(module, output.clone())

    handles = [conv.register_forward_hook(keep) for conv in convs]
    try:
        source(inputs.clone())
    finally:
        for handle in handles:
            handle.remove()
    return [seen[conv] for conv in convs]


def input_convs(target: nn.Module) -> list[tuple[nn.Conv2d, nn.Module]]:
    """(conv, its BN) of the target that read the block's input: a conv block's conv; a
    basic block's conv1, then its projection shortcut's conv if it has one."""
    if isinstance(target, ConvBlock):
        return [(target.conv, target.bn)]
    if isinstance(target, BasicBlock):
        side = target.shortcut
        return [(target.conv1, target.bn1)] + \
            ([(side[0], side[1])] if isinstance(side, nn.Sequential) else [])
    return []


@torch.no_grad()
def reconstruct_inputs(source: fx.GraphModule, target: nn.Module, student_inputs: Tensor,
                       teacher_inputs: Tensor, in_idx: Tensor) -> dict[str, float]:
    """Re-solve each conv of ``target`` that reads the block's input and was copied from
    a conv of teacher block ``source`` (the ``in_idx`` teacher channels the student's
    input holds), so it gives that teacher conv's outputs.

    Convs that are no such copy (a selection shortcut, a target no warm start
    filled) are left alone. Returns the conv-output mse_before and mse_after
    summed over the convs matched (a refused fit counts as unchanged), or
    nothing if none was.
    """
    block = target[0] if isinstance(target, nn.Sequential) else target
    teacher_convs = [conv for conv, _ in conv_bn_pairs(source) if conv.groups == 1]
    matches = []  # (conv, its BN, the teacher conv it copies, the rows it copies)
    for conv, bn in input_convs(block):
        for teacher_conv in teacher_convs:
            rows = copied_rows(conv.weight, teacher_conv.weight, in_idx)
            if rows is not None:
                matches.append((conv, bn, teacher_conv, rows))
                break
    if not matches:
        return {}
    before = after = 0.0
    solved = 0
    with held_in_eval(source, target):
        outputs = _conv_outputs(source, [m[2] for m in matches], teacher_inputs)
        for (conv, bn, _, rows), output in zip(matches, outputs):
            fit = refit_conv(conv, bn, student_inputs, output[:, rows])
            before += fit["mse_before"]  # a refused fit leaves its conv as it was
            after += fit["mse_after"] if fit["solved"] else fit["mse_before"]
            solved += int(fit["solved"])
    return {"mse_before": before, "mse_after": after, "solved": float(solved)}
