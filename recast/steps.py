"""The block phase of a recast: one sequential step, or all blocks at once.

A sequential step (the authors'): block i's target goes in, the blocks after
it are rebuilt until widths match, and the student's blocks 0..last (only
i..last with a frozen prefix) learn the teacher's activation at ``last`` from
the raw image through the student's own prefix (MSE, or another block loss
of recast/losses.py: ``--block-loss``; with ``--step-output-weight``, also the
teacher's output from there on). The all-at-once pass
(recast/local.py) trains every target on its own input in one pass instead.
"""

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

from recast.feature_losses import matching_channels
from recast.local import train_local
from recast.losses import BLOCK_LOSSES, soft_targets, weights_of
from recast.plan import Plan
from recast.precision import as_float, teacher_autocast
from recast.progress import Progress
from recast.settings import RecastConfig
from recast.solve import keeps_fit
from recast.step_fit import calibration_images, recalibrate, reconstruct_step, \
    solve_step
from recast.surgery import StudentSurgery, run_blocks
from recast.training import evaluate, run_batches
from recast.warmstart import can_warm_start, warm_student


SOLVE_IMAGES = 256  # calibration images of a closed-form fit: enough, and cheap


# what a step's least-squares fit solved for (StepRecord.fit_kind)
CLOSED_FORM = "closed form"  # --solve auto/target/target+next: recast/solve.py
INPUT_CONVS = "input convs"  # --solve input: recast/reconstruct.py


def fit_kind(solve: str) -> str:
    """What a fit made under --solve ``solve`` solved for."""
    return INPUT_CONVS if solve == "input" else CLOSED_FORM


@dataclass
class StepRecord:
    """What one recast step did and what it left behind."""

    index: int
    name: str
    kind: str
    target: str
    loss_at: int
    final_mse: float  # the step's final loss: with --step-output-weight, MSE plus its term
    accuracy: float
    seconds: float
    images: int
    warm_start: bool
    together: bool = False  # trained in one joint pass: seconds and images are the pass's
    # the MSE before and after the step's least-squares fit, of what its kind fits:
    # CLOSED_FORM, the target's pre-activation against the teacher, both with its BNs
    # given the calibration images' statistics (records older than recast/solve.py
    # match_batch_statistics measured "before" with the warm start's); INPUT_CONVS, the
    # re-solved input convs' outputs against their teacher convs', summed
    fit_mse_before: float | None = None
    fit_mse_after: float | None = None
    fit_kind: str | None = None  # CLOSED_FORM or INPUT_CONVS when a fit ran

    @property
    def fit_kept(self) -> bool:
        """Whether the fit ran and was kept (a fit that raised the MSE is thrown away:
        recast/solve.py, recast/reconstruct.py)."""
        return self.fit_mse_after is not None and keeps_fit(self.fit_mse_before,
                                                             self.fit_mse_after)

    @property
    def solved_start(self) -> bool:
        """Whether the target started from a kept closed-form fit (a re-solve of input
        convs keeps the warm start's target)."""
        return self.fit_kind == CLOSED_FORM and self.fit_kept

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], solve: str) -> "StepRecord":
        """A saved record; one saved before records named their fit's kind takes it
        from the run's --solve, the only one a run has."""
        if data.get("fit_mse_after") is not None and "fit_kind" not in data:
            data = dict(data, fit_kind=fit_kind(solve))
        return cls(**data)


def block_loss_label(config: RecastConfig) -> str:
    """The block-step loss as the log and the report name it."""
    label = BLOCK_LOSSES[config.block_loss].describe(weights_of(config))
    if config.step_output_weight:
        label += (f" + {config.step_output_weight:g} x soft KD (T={config.kd_temperature:g}) "
                  f"of the output through the teacher's remaining blocks")
    return label


def _loss_name(config: RecastConfig) -> str:
    """What a step's log line calls its final loss: MSE, as always, or the loss's name,
    with the downstream term when it is on."""
    name = "MSE" if config.block_loss == "mse" else f"{config.block_loss} loss"
    return f"{name} + downstream KD" if config.step_output_weight else name


def _on_images(config: RecastConfig) -> str:
    """What a step's accuracy was measured on, when not the whole test set."""
    return f" (on {config.step_test_images} test images)" if config.step_test_images else ""


def recast_step(surgery: StudentSurgery, teacher: nn.ModuleList, index: int,
                config: RecastConfig, train_loader, test_loader, device: torch.device,
                progress: Progress) -> StepRecord:
    """Install block ``index``'s target and train it against the teacher."""
    started = time.perf_counter()
    plan_step = surgery.plan.steps[index]
    block = plan_step.block
    warm, last = surgery.install(index)
    fit: dict[str, float] = {}
    solve = config.solve_mode(block.kind, plan_step.target)
    if solve != "none" or config.bn_recalibration:
        calibration = calibration_images(
            train_loader, max(SOLVE_IMAGES, config.bn_recalibration), device)
    if solve == "input":
        fit = reconstruct_step(surgery, teacher, index, calibration[:SOLVE_IMAGES]) \
            if warm else {}
    elif solve != "none":
        fit = solve_step(surgery, teacher, index, last, calibration[:SOLVE_IMAGES], solve,
                         fresh=not warm and config.solve_hidden == "principal")
    first_trained = index if config.freeze_prefix else 0
    student = surgery.blocks
    params = [p for b in student[first_trained:last + 1] for p in b.parameters()]

    def student_output(x: Tensor) -> Tensor:
        if config.freeze_prefix:
            with torch.no_grad():
                x = run_blocks(student, x, 0, index - 1)
            return run_blocks(student, x, index, last)
        return run_blocks(student, x, 0, last)

    block_loss = BLOCK_LOSSES[config.block_loss]
    compare = block_loss.make(weights_of(config))

    precision = config.teacher_precision  # the targets' forward (recast/precision.py)

    downstream = downstream_term(teacher, last, config)

    def loss_fn(x: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad(), teacher_autocast(precision, device):
            expected = as_float(run_blocks(teacher, x, 0, last))
        output = student_output(x)
        return compare(output, expected, None, None) + downstream(output, expected)

    def loss_with_inputs(x: Tensor, y: Tensor) -> Tensor:
        """The step's input maps too (FSP): block ``index``'s, the teacher's over the
        channels the student's hold."""
        with torch.no_grad(), teacher_autocast(precision, device):
            t_in = as_float(run_blocks(teacher, x, 0, index - 1))
            expected = as_float(run_blocks(teacher, t_in, index, last))
        with torch.set_grad_enabled(not config.freeze_prefix):
            s_in = run_blocks(student, x, 0, index - 1)
        output = run_blocks(student, s_in, index, last)
        return compare(output, expected, *matching_channels(
            s_in, t_in, surgery.input_channels(index))) + downstream(output, expected)

    surgery.train_only(first_trained, last)
    result = run_batches(loss_with_inputs if block_loss.needs_inputs else loss_fn, params,
                         train_loader, config.block_schedule(), device,
                         progress, f"recast {block.name}",
                         model=nn.ModuleList(student[first_trained:last + 1]))
    student.eval()
    if config.bn_recalibration:
        recalibrate(student, last, calibration[:config.bn_recalibration])
    accuracy = evaluate(Hybrid(student, teacher, last), test_loader, device,
                        config.step_test_images)
    progress.log(f"  after {block.name}: {_loss_name(config)} {result['loss']:.4f}, "
                 f"test accuracy {accuracy:.2f}%{_on_images(config)}")
    return StepRecord(index, block.name, block.kind, plan_step.target, last, result["loss"],
                      accuracy, time.perf_counter() - started, int(result["images"]), warm,
                      fit_mse_before=fit.get("mse_before"), fit_mse_after=fit.get("mse_after"),
                      fit_kind=fit_kind(solve) if "mse_after" in fit else None)


def downstream_term(teacher: nn.ModuleList, last: int,
                    config: RecastConfig) -> Callable[[Tensor, Tensor], Tensor]:
    """--step-output-weight's term: the student's activation at ``last`` run on through
    the teacher's remaining blocks, its output against the teacher's own from
    ``expected`` by soft KD; zero when off. Expects the teacher frozen and in eval mode,
    as the Recaster holds it: gradients pass through its blocks to the student, and
    both paths run in float32, so a student that matches ``expected`` scores 0 even
    under --teacher-precision bfloat16."""
    weight, end = config.step_output_weight, len(teacher) - 1

    def term(output: Tensor, expected: Tensor) -> Tensor:
        if not weight:
            return output.new_zeros(())
        with torch.no_grad():
            aim = run_blocks(teacher, expected, last + 1, end)
        return weight * soft_targets(run_blocks(teacher, output, last + 1, end), aim,
                                     temperature=config.kd_temperature)
    return term


def recast_all_at_once(plan: Plan, surgery: StudentSurgery, teacher: nn.ModuleList,
                       config: RecastConfig, train_loader, test_loader, device: torch.device,
                       progress: Progress) -> list[StepRecord]:
    """Every target block in one pass, each on its own input (recast/local.py)."""
    started = time.perf_counter()
    blocks, kept = warm_student(plan, config.init)
    surgery.replace_all(blocks)
    progress.log(f"all {len(plan.recast_steps())} target blocks at once, each on its own input")
    progress.log(f"block steps: {block_loss_label(config)}")
    result = train_local(plan, teacher, surgery.blocks, kept, train_loader,
                         config.block_schedule(), device, progress,
                         BLOCK_LOSSES[config.block_loss], weights_of(config))
    accuracy = evaluate(nn.Sequential(*surgery.blocks), test_loader, device)
    progress.log(f"  after all blocks at once: test accuracy {accuracy:.2f}%")
    seconds = time.perf_counter() - started
    block_mse = result["block_mse"]
    return [StepRecord(step.block.index, step.block.name, step.block.kind, step.target,
                       step.block.index, block_mse.get(step.block.index, float("nan")),
                       accuracy, seconds, int(result["images"]),
                       config.init == "teacher" and can_warm_start(step.block.kind, step.target)
                       and kept[step.block.index] is not None, together=True)
            for step in plan.recast_steps()]


class Hybrid(nn.Module):
    """Student blocks up to ``last``, teacher blocks after: accuracy mid-recast."""

    def __init__(self, student: nn.ModuleList, teacher: nn.ModuleList, last: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([*student[:last + 1], *teacher[last + 1:]])

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x
