"""Closed-form fits inside a recast step, before and after its SGD.

``--solve target`` fits the new target block's last conv (and a projection
shortcut) to the teacher block's pre-activation by least squares, its BNs first
given the calibration images' statistics (recast/solve.py) on a fixed set;
``--solve target+next`` also re-solves the first conv(s) of the rebuilt next
block on the kept channels (He et al. 2017; ThiNet), a block the next step
replaces; ``--solve input`` re-solves instead the warm-started target's own
input convs on the channels its narrowed input kept, where it lasts (recast/
reconstruct.py). ``--bn-recalibration N``
re-estimates the student's BN statistics on N calibration images after each
step. The calibration images are the first training images, unaugmented, so a
fit consumes no random numbers and a resumed run replays it exactly.
"""

from typing import Iterable

import torch
from torch import Tensor, nn

from blocks.weights import conv_bn_pairs
from recast.bn_statistics import recalibrate_bn
from recast.modes import held_in_eval
from recast.reconstruct import input_convs, reconstruct_inputs
from recast.solve import can_solve, fit_next_conv, solve_block
from recast.surgery import StudentSurgery, run_blocks


def calibration_images(loader, count: int, device: torch.device) -> Tensor:
    """The first ``count`` training images, normalised, without augmentation."""
    data = getattr(loader, "data", None)
    if data is not None and hasattr(loader, "mean"):
        return loader.normalise(data.images[:count]).to(device)
    images, _ = next(iter(loader))  # another loader: one batch of it
    return images[:count].to(device)


@torch.no_grad()
def solve_step(surgery: StudentSurgery, teacher: nn.ModuleList, index: int, last: int,
               images: Tensor, mode: str, fresh: bool = False) -> dict[str, float]:
    """Fit block ``index``'s target (and, with ``target+next``, the rebuilt next block);
    ``fresh``: a basic target's conv1 first gets principal directions (solve_block)."""
    student = surgery.blocks
    result: dict[str, float] = {}
    target, kept, step = student[index], surgery.kept.get(index), surgery.plan.steps[index]
    with held_in_eval(student):
        t_in = run_blocks(teacher, images, 0, index - 1)
        s_in = run_blocks(student, images, 0, index - 1)
        # a narrower target holds teacher channels only if a warm start or the surgery
        # chose them (StudentSurgery: the channels the next block reads most); otherwise
        # it has nothing of the teacher's to fit
        if can_solve(target) and (kept is not None
                                  or step.out_channels == step.block.out_channels):
            fit = solve_block(teacher[index], target, s_in, t_in, kept, fit_hidden=fresh)
            result = {"mse_before": fit["mse_before"], "mse_after": fit["mse_after"]}
        if mode == "target+next" and last > index:
            _fit_next(teacher[index + 1], student[index + 1], target(s_in),
                      teacher[index](t_in))
    return result


@torch.no_grad()
def reconstruct_step(surgery: StudentSurgery, teacher: nn.ModuleList, index: int,
                     images: Tensor) -> dict[str, float]:
    """``--solve input``: re-solve block ``index``'s warm-started target's input convs
    on the channels its narrowed input kept (recast/reconstruct.py)."""
    in_idx = surgery.input_channels(index)
    if len(in_idx) >= surgery.plan.steps[index].block.in_channels:
        return {}  # nothing was dropped before this block
    student = surgery.blocks
    with held_in_eval(student):
        t_in = run_blocks(teacher, images, 0, index - 1)
        s_in = run_blocks(student, images, 0, index - 1)
        fit = reconstruct_inputs(teacher[index], student[index], s_in, t_in, in_idx)
    return {k: fit[k] for k in ("mse_before", "mse_after") if k in fit}


def _fit_next(source: nn.Module, rebuilt: nn.Module, s_in: Tensor, t_in: Tensor) -> None:
    """Re-solve the input conv(s) of a rebuilt block to give the teacher's outputs: the
    first 3x3 conv from the teacher's, a projection shortcut from its 1x1 (or its input)."""
    block = rebuilt[0] if isinstance(rebuilt, nn.Sequential) else rebuilt
    pairs = conv_bn_pairs(source)
    main = [p[0] for p in pairs if p[0].kernel_size == (3, 3)]
    side = [p[0] for p in pairs if p[0].kernel_size == (1, 1)]
    if not main:
        return
    for (conv, bn), teacher_conv in zip(input_convs(block), [main[0], (side or [None])[0]]):
        fit_next_conv(conv, bn, teacher_conv, s_in, t_in)


def recalibrate(student: nn.ModuleList, last: int, images: Tensor,
                batch_size: int = 128) -> int:
    """Re-estimate the BN statistics of student blocks 0..last on ``images``."""
    prefix = nn.Sequential(*student[:last + 1])
    batches: Iterable[Tensor] = images.split(batch_size)
    return recalibrate_bn(prefix, batches, max_batches=len(images) // batch_size + 1)
