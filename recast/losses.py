"""Distillation losses on logits."""

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
