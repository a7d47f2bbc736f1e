"""The fine-tune: the whole student on a loss from the registry (recast/losses.py).

Losses that need no teacher (``ce``) skip the teacher's forward, so such a
pass costs what a scratch-training pass costs. A run without labels
(``config.labels == "none"``) hands the loss no labels at all. Losses with a
feature term (``rkd+kd``, ``at+kd``, ``hint-ce``, ``hint-mse-ce``) run student and
teacher block by block: both are chains here, block i of one standing for block i of the other. With
``finetune_teacher_share`` under 1 the teacher's loss hands over to CE on the labels
after that share of the batches, and the rest cost scratch-training passes.
"""

import itertools
from typing import Any, Callable

import torch
from torch import Tensor, nn

from recast.errors import RecastError
from recast.losses import LOSSES, weights_of
from recast.progress import Progress
from recast.settings import RecastConfig
from recast.training import batches_for, evaluate, run_batches

LossFn = Callable[[Tensor, Tensor], Tensor]


def finetune_label(config: RecastConfig) -> str:
    """The fine-tune loss as the log and report.md both name it."""
    label = LOSSES[config.finetune_loss].describe(config.kd_temperature, config.kd_alpha,
                                                  weights_of(config))
    if config.finetune_teacher_share < 1:
        label += (f" for the first {config.finetune_teacher_share * 100:g}% of its "
                  f"images, then {LOSSES['ce'].label}")
    return label


def handover(first: LossFn, then: LossFn, after: int, done: int = 0,
             on_handover: Callable[[], None] | None = None) -> LossFn:
    """loss(x, y): ``first`` for the first ``after`` batches, ``then`` for the rest.
    Counted here, not in the training loop, so any loss can hand over to any other;
    ``done`` batches have run already (a resumed fine-tune), so a resume hands over
    at the batch the uninterrupted run would. ``on_handover`` runs before the first
    batch of ``then``, so the log can say when the teacher stopped."""
    batches = itertools.count(done)

    def loss(x: Tensor, y: Tensor) -> Tensor:
        batch = next(batches)
        if batch < after:
            return first(x, y)
        if batch == after and on_handover is not None:
            on_handover()
        return then(x, y)

    return loss


def finetune(student: nn.Sequential, teacher: nn.Module, config: RecastConfig, train_loader,
             test_loader, device: torch.device, progress: Progress,
             on_point: Callable[[int, float], None],
             checkpoint: Callable[[dict[str, Any]], None] | None = None,
             resume: dict[str, Any] | None = None) -> dict[str, float]:
    """Train all of ``student`` for ``config.finetune_epochs``; loss and images out.

    ``on_point(images, accuracy)`` gets the test accuracy after every pass (images
    counted from the fine-tune's start); ``checkpoint`` and ``resume`` are
    :func:`recast.training.run_batches`'s.
    """
    if config.finetune_loss not in LOSSES:  # auto: RecastConfig.settle_finetune decides it
        raise RecastError(f"--finetune-loss {config.finetune_loss} is decided after the block "
                          f"steps; settle the config (RecastConfig.settle_finetune) first")
    schedule = config.finetune_schedule()
    # with --labels none the loss gets None for labels: nothing can read one
    loss_fn = LOSSES[config.finetune_loss].objective(student, teacher, config.kd_temperature,
                                                      config.kd_alpha,
                                                      labels=config.labels != "none",
                                                      weights=weights_of(config))
    if config.finetune_teacher_share < 1:
        total = batches_for(schedule.epochs, len(train_loader))  # as run_batches counts
        labels_alone = LOSSES["ce"].objective(student, teacher, config.kd_temperature,
                                              config.kd_alpha)
        # at least one batch on the teacher, as the label promises a share of it
        after = max(1, round(config.finetune_teacher_share * total))
        loss_fn = handover(loss_fn, labels_alone, after,
                           resume["batch"] if resume is not None else 0,
                           lambda: progress.log(f"fine-tune: batch {after + 1} of {total} "
                                                f"on, CE(labels) alone; no teacher forward"))
    student.train()

    accuracies: list[float] = []

    def record(images: int) -> None:
        accuracies.append(evaluate(student, test_loader, device))
        on_point(images, accuracies[-1])

    progress.log(f"fine-tune: {finetune_label(config)}")
    result = run_batches(loss_fn, list(student.parameters()), train_loader,
                         schedule, device, progress, "fine-tune",
                         on_epoch=record if test_loader is not None else None,
                         checkpoint=checkpoint, resume=resume, model=student)
    student.eval()
    if accuracies:  # the last point evaluated the finished student already
        result["final_accuracy"] = accuracies[-1]
    return result
