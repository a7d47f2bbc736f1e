"""recast/finetune.py: the whole student on a loss from the registry."""

import copy

import pytest
import torch

from recast.finetune import finetune, finetune_label
from recast.progress import Progress
from recast.settings import RecastConfig


@pytest.mark.parametrize("loss, teacher_runs", [("ce", False), ("kd", True)])
def test_only_a_distilling_finetune_runs_the_teacher(vgg_teacher, loaders, loss,
                                                     teacher_runs) -> None:
    """finetune_loss='ce' is the cheap fine-tune: a pass costs a scratch pass."""
    config = RecastConfig(epochs_per_block=0.05, finetune_epochs=0.1, finetune_loss=loss)
    teacher = copy.deepcopy(vgg_teacher).eval()
    student = copy.deepcopy(vgg_teacher).requires_grad_(True)
    calls = []
    teacher.register_forward_hook(lambda *_: calls.append(1))
    result = finetune(student, teacher, config, loaders[0], None, torch.device("cpu"),
                      Progress(quiet=True), on_point=lambda images, accuracy: None)
    assert bool(calls) == teacher_runs
    assert result["images"] > 0 and torch.isfinite(torch.tensor(result["loss"]))


def test_log_and_report_name_the_fine_tune_loss_alike() -> None:
    config = RecastConfig(finetune_loss="kd", kd_temperature=2.0, kd_alpha=0.5)
    assert finetune_label(config) == "Hinton KD (T=2.0, alpha=0.5)"
