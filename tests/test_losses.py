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


def test_teacher_only_losses_never_read_labels() -> None:
    """kd-soft, mse and kd at alpha 1 run with labels=None; the others say they read them."""
    from recast.losses import soft_targets

    student, teacher = torch.randn(8, 10), torch.randn(8, 10)
    for name in ("kd-soft", "mse"):
        entry = LOSSES[name]
        assert not entry.reads_labels(4.0, 0.9) and entry.needs_teacher
        assert entry.make(4.0, 0.9)(student, teacher, None) > 0
    assert LOSSES["kd"].make(4.0, 1.0)(student, teacher, None) == soft_targets(student, teacher)
    assert torch.equal(LOSSES["kd"].make(4.0, 1.0)(student, teacher, None),
                       hinton_kd(student, teacher, torch.arange(8), 4.0, 1.0))
    assert [n for n, e in LOSSES.items() if e.reads_labels(4.0, 0.9)] == ["mse-ce", "kd", "ce"]


def test_an_objective_without_labels_hands_the_loss_none() -> None:
    import pytest

    from recast.errors import RecastError
    from recast.losses import LogitLoss

    seen = []
    spy = LogitLoss("spy", "spy", True, lambda t, a: lambda s, te, y: seen.append(y) or s.sum(),
                    reads_labels=lambda t, a: False)
    spy.objective(lambda x: x, lambda x: x * 2, 4.0, 0.9, labels=False)(
        torch.randn(4, 10), torch.arange(4))
    assert seen == [None]
    with pytest.raises(RecastError, match="--finetune-loss ce reads labels"):
        LOSSES["ce"].objective(lambda x: x, lambda x: x, 4.0, 0.9, labels=False)
