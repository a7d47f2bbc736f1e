"""Distillation losses on logits, in one registry.

The registry drives the ``--finetune-loss`` choices, the engine's fine-tune
and the ``--method`` baselines alike (as torchdistill's loss registry does):
a new loss is one function and one entry here.
"""

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def hinton_kd(student: Tensor, teacher: Tensor, labels: Tensor, temperature: float = 4.0,
              alpha: float = 0.9) -> Tensor:
    """alpha * T^2 * KL(p_T || p_S) + (1 - alpha) * CE (Hinton et al., 2015)."""
    soft = F.kl_div(F.log_softmax(student / temperature, 1),
                    F.softmax(teacher / temperature, 1), reduction="batchmean")
    return alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(student, labels)


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

    def objective(self, student: Callable[[Tensor], Tensor], teacher: Callable[[Tensor], Tensor],
                  temperature: float, alpha: float) -> Callable[[Tensor, Tensor], Tensor]:
        """loss(images, labels) of ``student``; runs the teacher only if the loss reads it."""
        combine = self.make(temperature, alpha)

        def loss(x: Tensor, y: Tensor) -> Tensor:
            expected = None
            if self.needs_teacher:
                with torch.no_grad():
                    expected = teacher(x)
            return combine(student(x), expected, y)

        return loss

    def describe(self, temperature: float, alpha: float) -> str:
        """The label the log and report.md both show."""
        return self.label.format(T=temperature, alpha=alpha)


LOSSES: dict[str, LogitLoss] = {
    "mse-ce": LogitLoss("mse-ce", "MSE(teacher logits) + CE(labels)", True,
                        lambda t, a: logit_mse_ce),
    "kd": LogitLoss("kd", "Hinton KD (T={T}, alpha={alpha})", True,
                    lambda t, a: lambda s, te, y: hinton_kd(s, te, y, t, a)),
    "ce": LogitLoss("ce", "CE(labels), no teacher", False, lambda t, a: labels_only),
}
