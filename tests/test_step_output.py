"""--step-output-weight: a block step also learns the teacher's output, through the
teacher's remaining blocks (network grafting)."""

import pytest
import torch
from torch import nn

from recast.errors import RecastError
from recast.models import build_model
from recast.plan import make_plan
from recast.presets import make_config
from recast.progress import Progress
from recast.settings import RecastConfig
from recast.steps import downstream_term, block_loss_label, recast_step
from recast.surgery import StudentSurgery
from recast.walker import walk

CPU = torch.device("cpu")


def _teacher() -> nn.ModuleList:
    torch.manual_seed(0)
    blocks = [nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
              nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()),
              nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))]
    return nn.ModuleList(blocks).eval().requires_grad_(False)


def test_the_term_is_zero_at_the_teachers_activation_and_pulls_elsewhere() -> None:
    """Matching the teacher's activation exactly leaves nothing downstream; a gap sends
    a gradient back through the frozen teacher blocks to the student's output, and
    none into those blocks."""
    teacher = _teacher()
    term = downstream_term(teacher, 0, RecastConfig(step_output_weight=2.0), CPU)
    expected = teacher[0](torch.randn(5, 3, 8, 8))
    assert term(expected.clone(), expected).item() == pytest.approx(0.0, abs=1e-6)
    output = (expected + torch.randn_like(expected)).requires_grad_(True)
    loss = term(output, expected)
    loss.backward()
    assert loss.item() > 0 and output.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    half = downstream_term(teacher, 0, RecastConfig(step_output_weight=1.0), CPU)
    assert half(output, expected).item() == pytest.approx(loss.item() / 2, rel=1e-5)


def test_off_it_adds_nothing_and_runs_no_teacher_block() -> None:
    teacher = _teacher()
    calls = []
    teacher[1].register_forward_hook(lambda *_: calls.append(1))
    term = downstream_term(teacher, 0, RecastConfig(), CPU)
    assert term(torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)).item() == 0
    assert calls == []


def test_a_step_with_it_trains_and_says_so(loaders) -> None:
    """A real ResNet-20 -> plain step: its final loss is the MSE plus the term, so it is
    above the same step's MSE alone on the same batches, and the label names the term."""
    plan = make_plan(walk(build_model("resnet20", width=0.25)), "conv", 1.0)
    first = plan.recast_steps()[0].block.index
    losses = {}
    for weight in (0.0, 1.0):
        config = RecastConfig(epochs_per_block=2 / len(loaders[0]), step_output_weight=weight)
        torch.manual_seed(0)
        surgery = StudentSurgery(plan, config.init, CPU)
        teacher = nn.ModuleList(b.module for b in plan.chain.blocks).eval()
        losses[weight] = recast_step(surgery, teacher, first, config, loaders[0], loaders[1],
                                     CPU, Progress(quiet=True)).final_mse
    assert losses[1.0] > losses[0.0] > 0
    label = block_loss_label(RecastConfig(step_output_weight=0.5))
    assert "0.5 x soft KD (T=4)" in label and "remaining blocks" in label


def test_the_all_at_once_pass_refuses_it() -> None:
    with pytest.raises(RecastError, match="--step-output-weight acts on sequential"):
        make_config("fast", {"step_output_weight": 0.5, "block_training": "local"})
    with pytest.raises(RecastError, match="--step-output-weight"):
        make_config("fast", {"step_output_weight": -1.0})
