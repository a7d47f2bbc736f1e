"""Distillation losses on logits, in one registry.

The registry drives the ``--finetune-loss`` choices, the engine's fine-tune
and the ``--method`` baselines alike (as torchdistill's loss registry does):
a new loss is one function and one entry here. Each entry also says whether
it reads the labels, so a run without labels (``--labels none``) can refuse
the ones that do and fine-tune on the teacher's outputs alone.
"""

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from recast.errors import RecastError


def hinton_kd(student: Tensor, teacher: Tensor, labels: Tensor, temperature: float = 4.0,
              alpha: float = 0.9) -> Tensor:
    """alpha * T^2 * KL(p_T || p_S) + (1 - alpha) * CE (Hinton et al., 2015)."""
    soft = F.kl_div(F.log_softmax(student / temperature, 1),
                    F.softmax(teacher / temperature, 1), reduction="batchmean")
    return alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(student, labels)


def soft_targets(student: Tensor, teacher: Tensor, labels: Tensor | None = None,
                 temperature: float = 4.0) -> Tensor:
    """T^2 * KL(p_T || p_S): Hinton KD with all weight on the soft targets, no labels."""
    soft = F.kl_div(F.log_softmax(student / temperature, 1),
                    F.softmax(teacher / temperature, 1), reduction="batchmean")
    return temperature**2 * soft


def logit_mse(student: Tensor, teacher: Tensor, labels: Tensor | None = None) -> Tensor:
    """MSE between the logits: the authors' fine-tune loss without its label term."""
    return F.mse_loss(student, teacher)


def labels_only(student: Tensor, teacher: Tensor | None, labels: Tensor) -> Tensor:
    """CE on the labels; ignores the teacher, so callers can skip its forward."""
    return F.cross_entropy(student, labels)


def logit_mse_ce(student: Tensor, teacher: Tensor, labels: Tensor) -> Tensor:
    """The recasting authors' fine-tune loss: MSE(logits) + CE, weights 1:1."""
    return F.mse_loss(student, teacher) + F.cross_entropy(student, labels)


# (student logits, teacher logits or None, labels) -> loss
LogitLossFn = Callable[[Tensor, Tensor | None, Tensor], Tensor]


@dataclass(frozen=True)
class LogitLoss:
    """A fine-tune loss: how it is computed, shown, and whether it needs the teacher."""

    name: str
    label: str
    needs_teacher: bool
    # (temperature, alpha) -> the loss function: the settings a loss may read
    make: Callable[[float, float], LogitLossFn]
    # (temperature, alpha) -> whether the loss reads the labels at those settings
    reads_labels: Callable[[float, float], bool] = lambda t, a: True

    def objective(self, student: Callable[[Tensor], Tensor], teacher: Callable[[Tensor], Tensor],
                  temperature: float, alpha: float,
                  labels: bool = True) -> Callable[[Tensor, Tensor], Tensor]:
        """loss(images, labels) of ``student``; runs the teacher only if the loss reads it.

        With ``labels=False`` the loss never sees the batch's labels (it gets None),
        so a run without labels cannot read one by accident.
        """
        combine = self.make(temperature, alpha)
        if not labels and self.reads_labels(temperature, alpha):
            raise RecastError(f"--finetune-loss {self.name} reads labels, but the run has "
                              f"none; use --finetune-loss kd-soft or mse (the teacher's "
                              f"outputs only)")

        def loss(x: Tensor, y: Tensor) -> Tensor:
            expected = None
            if self.needs_teacher:
                with torch.no_grad():
                    expected = teacher(x)
            return combine(student(x), expected, y if labels else None)

        return loss

    def describe(self, temperature: float, alpha: float) -> str:
        """The label the log and report.md both show."""
        return self.label.format(T=temperature, alpha=alpha)


def _hinton(temperature: float, alpha: float) -> LogitLossFn:
    """Hinton KD; at alpha 1 the label term (weight 0) is not computed at all."""
    if alpha == 1:
        return lambda s, te, y: soft_targets(s, te, None, temperature)
    return lambda s, te, y: hinton_kd(s, te, y, temperature, alpha)


LOSSES: dict[str, LogitLoss] = {
    "mse-ce": LogitLoss("mse-ce", "MSE(teacher logits) + CE(labels)", True,
                        lambda t, a: logit_mse_ce),
    "kd": LogitLoss("kd", "Hinton KD (T={T}, alpha={alpha})", True, _hinton,
                    reads_labels=lambda t, a: a < 1),
    "ce": LogitLoss("ce", "CE(labels), no teacher", False, lambda t, a: labels_only),
    "kd-soft": LogitLoss("kd-soft", "Hinton KD on the teacher's soft targets only (T={T}), "
                         "no labels", True,
                         lambda t, a: lambda s, te, y: soft_targets(s, te, None, t),
                         reads_labels=lambda t, a: False),
    "mse": LogitLoss("mse", "MSE(teacher logits), no labels", True, lambda t, a: logit_mse,
                     reads_labels=lambda t, a: False),
}
# the fine-tune loss of a run without labels when none is chosen
TEACHER_ONLY_DEFAULT = "kd-soft"
