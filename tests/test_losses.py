"""recast/losses.py: the loss registry the fine-tune, the baselines and the CLI share."""

import torch

from recast.losses import LOSSES, hinton_kd, labels_only
from recast.settings import config_flags


def test_hinton_kd_of_identical_logits_is_only_the_label_term() -> None:
    logits, labels = torch.randn(8, 10), torch.arange(8)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(hinton_kd(logits, logits, labels, 4.0, 0.9), 0.1 * ce, atol=1e-6)


def test_a_loss_without_the_teacher_never_runs_it() -> None:
    calls = []

    def teacher(x):
        calls.append(1)
        return x

    loss = LOSSES["ce"].objective(lambda x: x, teacher, 4.0, 0.9)
    loss(torch.randn(4, 10), torch.arange(4))
    assert not calls and labels_only(torch.randn(2, 3), None, torch.arange(2)) > 0


def test_a_distilling_loss_runs_the_teacher_without_gradients() -> None:
    student = torch.nn.Linear(4, 3)
    teacher = torch.nn.Linear(4, 3)
    loss = LOSSES["mse-ce"].objective(student, teacher, 4.0, 0.9)
    loss(torch.randn(5, 4), torch.arange(5) % 3).backward()
    assert student.weight.grad is not None and teacher.weight.grad is None


def test_every_registered_loss_is_a_fine_tune_choice() -> None:
    choices = dict(config_flags())["--finetune-loss"]["choices"]
    assert choices == list(LOSSES)
