"""The whole job: walk the teacher, plan, recast block by block, fine-tune,
report. :func:`recast` is the Python API; the CLI adds data, teacher
training and the run folder around it.
"""

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from recast.checkpoint import CheckpointStore
from recast.engine import Recaster
from recast.errors import RecastError
from recast.finetune import finetune_label
from recast.generations import check_generations, checkpoint_folder, run_generations
from recast.hints import check_hints
from recast.plan import Plan, make_plan
from recast.progress import Progress
from recast.result import RecastResult
from recast.run_report import add_steps, trained_report
from recast.settings import RecastConfig, step_images
from recast.steps import block_loss_label
from recast.training import evaluate, pick_device
from recast.walker import walk


def recast(
    teacher: nn.Module,
    target: str = "conv",
    width: float | Sequence[float] | None = 1.0,
    *,
    train_loader,
    test_loader,
    input_shape: tuple[int, ...] | None = None,
    config: RecastConfig | None = None,
    device: str = "auto",
    progress: Progress | None = None,
    teacher_accuracy: float | None = None,
    checkpoints: str | Path | None = None,
    leaf_modules: Sequence[str] = (),
    plan_options: dict[str, Any] | None = None,
    generations: int = 1,
    generations_dir: str | Path | None = None,
    plan: Plan | None = None,
) -> RecastResult:
    """Recast ``teacher`` into a student of ``target`` blocks at ``width``.

    The loaders yield (images, labels) batches; the teacher must already be
    trained. Returns the student and a report (accuracy, params, mults, MACs,
    latency, per-block MSE and accuracy). With ``checkpoints`` (a folder) the
    run checkpoints after every step and fine-tune pass, and continues from the
    latest checkpoint there if one exists. ``leaf_modules`` (class names or
    module paths) are traced whole, for code torch.fx cannot trace;
    ``plan_options`` are :func:`recast.plan.make_plan`'s (budgets, allow_bigger).

    ``generations`` = N > 1: born-again generations (Furlanello et al. 2018), the
    finished student is the teacher of the next recast of the same plan, N recasts
    in all; the report's ``generations`` lists each one's accuracy. A
    ``generations_dir`` keeps each finished generation (``DIR/G/``) and reuses it
    when the run is resumed (see :mod:`recast.generations`).

    ``plan``: one already made from this teacher's walk with the same arguments
    (the CLI plans before training the teacher, so a bad plan fails first), used
    instead of walking again while its blocks still read the teacher's own
    tensors. A device move replaces buffers the walk may have copied into a
    block, so then the teacher is walked again.
    """
    generations = check_generations(generations)
    config = config or RecastConfig()
    progress = progress or Progress(quiet=True)
    torch.manual_seed(config.seed)
    run_device = pick_device(device)
    if input_shape is None:
        images, _ = next(iter(test_loader))
        input_shape = (1, *images.shape[1:])
    started = time.perf_counter()
    teacher = teacher.cpu().eval()
    if plan is not None and plan.target != target:
        raise RecastError(f"recast(): the plan given recasts into {plan.target} blocks, "
                          f"not {target}; pass target={plan.target!r} or no plan")
    if plan is None or not reads_teacher(plan, teacher):
        chain = walk(teacher, tuple(input_shape), leaf_modules=leaf_modules)
        plan = make_plan(chain, target, width, **(plan_options or {}))
    check_hints(plan, "recast", config.loss_to_check)  # before the steps, not after them
    if teacher_accuracy is None:
        teacher_accuracy = evaluate(teacher, test_loader, torch.device("cpu"))
    loaders = (train_loader, test_loader)
    if generations == 1:
        return recast_plan(plan, teacher_accuracy, loaders, config, run_device, progress,
                           checkpoints, started)
    return run_generations(
        plan, teacher_accuracy, generations,
        lambda generation, plan, accuracy: recast_plan(
            plan, accuracy, loaders, born_again(config, generation), run_device, progress,
            checkpoint_folder(checkpoints, generation),
            started if generation == 1 else time.perf_counter()),
        seed=config.seed, train_loader=train_loader, test_loader=test_loader,
        progress=progress, keep=generations_dir, leaf_modules=leaf_modules)


def reads_teacher(plan: Plan, teacher: nn.Module) -> bool:
    """Whether every weight and buffer ``plan``'s blocks read is one of ``teacher``'s
    own tensors (so the plan sees what the teacher holds now)."""
    own = {id(t) for t in (*teacher.parameters(), *teacher.buffers())}
    return all(id(t) in own for block in plan.chain.blocks
               for t in (*block.module.parameters(), *block.module.buffers()))


def born_again(config: RecastConfig, generation: int) -> RecastConfig:
    """A later generation starts its targets from scratch, as born-again networks do:
    warm-started from the previous student, whose blocks already have the targets'
    shapes, it would begin as a copy of it and only train it longer."""
    return config if generation == 1 else replace(config, init="random")


def recast_plan(plan: Plan, teacher_accuracy: float, loaders: tuple, config: RecastConfig,
                run_device: torch.device, progress: Progress,
                checkpoints: str | Path | None, started: float) -> RecastResult:
    """Recast block by block and fine-tune as ``plan`` says; the trained result."""
    train_loader, test_loader = loaders
    store = CheckpointStore(Path(checkpoints)) if checkpoints is not None else None
    resumed = store is not None and store.latest() is not None
    recaster = Recaster(plan, config, run_device, progress, store)
    outcome = recaster.run(train_loader, test_loader)
    config = recaster.config  # with the budget split into epochs
    student = outcome.student.cpu().eval()
    report = trained_report(plan, student, teacher_accuracy, outcome.accuracy)
    add_steps(report, outcome.steps, outcome.finetune)
    report["finetune_loss"] = finetune_label(config)
    report["block_loss"] = block_loss_label(config)
    report["images_seen"] = outcome.images
    report["curve"] = outcome.curve  # test accuracy vs training images seen
    report["block_training"] = config.block_training
    report["step_test_images"] = step_images(config.block_training, config.step_test_images)
    report["recast_seconds"] = round(time.perf_counter() - started, 1)
    report["resumed"] = resumed  # then recast_seconds counts only the resumed part
    report["device"] = str(run_device)
    return RecastResult(student, plan, report, config)
