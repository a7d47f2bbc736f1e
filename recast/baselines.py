"""The methods recasting is compared against, on the same student and budget.

``scratch`` trains the planned student from random init on labels, ``kd``
distils the teacher into it (Hinton, T and alpha), ``kd-mse`` uses the
recasting authors' logit MSE + CE, ``hint`` CE plus the teacher's block
outputs as hints at every block of the same shape (FitNets' hints, from random
weights). All use SGD + nesterov + cosine, the recipe the teacher was trained
with. Without labels only a method whose loss reads none at alpha 1 can run
(``kd``), and then all its weight is on the teacher's soft targets.
"""

import copy
import time
from typing import Any

import torch
from torch import nn

from recast.errors import RecastError
from recast.losses import BASELINES, LOSSES, baseline_reads_labels
from recast.plan import Plan
from recast.progress import Progress
from recast.training import Schedule, evaluate, run_batches


def teacher_chain(plan: Plan) -> nn.Sequential:
    """The teacher as the plan's chain of blocks, block i beside the student's block i:
    what a loss with a feature term (``hint``) compares the student to. It holds the
    plan's own modules: :func:`train_student` works on a copy."""
    return plan.chain.as_module()


def fresh_student(plan: Plan) -> nn.Sequential:
    """The planned student with every layer re-initialised (no teacher weights)."""
    student = plan.build_student()
    for module in student.modules():
        if hasattr(module, "reset_parameters") and module is not student:
            module.reset_parameters()
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
    return student


def train_student(
    method: str,
    student: nn.Module,
    teacher: nn.Module,
    train_loader,
    test_loader,
    epochs: float,
    device: torch.device,
    progress: Progress,
    lr: float = 0.05,
    temperature: float = 4.0,
    alpha: float = 0.9,
    curve: list[dict[str, float]] | None = None,
    labels: bool = True,
) -> dict[str, Any]:
    """Train ``student`` by ``method`` for ``epochs``; accuracy and cost out.

    ``labels=False``: no label reaches the loss; ``kd`` then runs at alpha 1.
    """
    if method not in BASELINES:
        raise RecastError(f"unknown --method {method!r}; use recast or one of "
                          f"{', '.join(BASELINES)}")
    if not labels and baseline_reads_labels(method):
        raise RecastError(f"--method {method} learns from labels, but the run has none; use "
                          f"--method kd (Hinton KD on the teacher's outputs alone) or recast")
    # a copy: freezing the caller's teacher would freeze the blocks a later recast of
    # the same plan keeps (a plan's chain holds the teacher's own modules)
    teacher = copy.deepcopy(teacher).to(device).eval().requires_grad_(False)
    student = student.to(device).train()
    alpha = alpha if labels else 1.0
    loss_fn = LOSSES[BASELINES[method]].objective(student, teacher, temperature, alpha,
                                                  labels=labels)

    accuracies: list[float] = []

    def record(images: int) -> None:
        accuracies.append(evaluate(student, test_loader, device))
        progress.scalar("test/accuracy_vs_images", accuracies[-1], images)
        if curve is not None:
            curve.append({"images": images, "accuracy": round(accuracies[-1], 2)})

    started = time.perf_counter()
    schedule = Schedule(epochs, lr, "sgd", "cosine", weight_decay=5e-4)
    result = run_batches(loss_fn, list(student.parameters()), train_loader, schedule, device,
                         progress, method, on_epoch=record if curve is not None else None,
                         model=student)
    # the last curve point evaluated the finished student already
    accuracy = accuracies[-1] if accuracies else evaluate(student, test_loader, device)
    return {"student": student.eval(), "accuracy": accuracy, "images": result["images"],
            "seconds": time.perf_counter() - started}
