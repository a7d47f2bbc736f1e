"""--step-output-weight: a block step also learns the teacher's output, through the
teacher's remaining blocks (network grafting)."""

import copy

import pytest
import torch
from torch import nn

from recast.errors import RecastError
from recast.models import build_model
from recast.plan import make_plan
from recast.presets import make_config
from recast.progress import Progress
from recast.settings import RecastConfig
from recast.steps import block_loss_label, downstream_term, recast_step
from recast.surgery import StudentSurgery
from recast.walker import walk

CPU = torch.device("cpu")


def _teacher() -> nn.ModuleList:
    """Three blocks, frozen and in eval mode as the Recaster holds a teacher; a BN after
    the loss point, so a teacher left in train mode would change its statistics."""
    torch.manual_seed(0)
    blocks = [nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
              nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
              nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))]
    return nn.ModuleList(blocks).eval().requires_grad_(False)


@pytest.mark.parametrize("last", [0, 2])  # mid-network, and the head itself (logits)
def test_the_term_is_zero_at_the_teachers_activation_and_pulls_elsewhere(last) -> None:
    """Matching the teacher's activation exactly leaves nothing downstream; a gap sends
    a gradient back through the teacher's blocks to the student's output, and the
    teacher comes out as it went in."""
    teacher = _teacher()
    before = copy.deepcopy(teacher.state_dict())
    term = downstream_term(teacher, last, RecastConfig(step_output_weight=2.0))
    with torch.no_grad():
        x = torch.randn(5, 3, 8, 8)
        for block in teacher[:last + 1]:
            x = block(x)
    expected = x
    assert term(expected.clone(), expected).item() == pytest.approx(0.0, abs=1e-6)
    output = (expected + torch.randn_like(expected)).requires_grad_(True)
    loss = term(output, expected)
    loss.backward()
    assert loss.item() > 0 and output.grad.abs().sum() > 0
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    half = downstream_term(teacher, last, RecastConfig(step_output_weight=1.0))
    assert half(output, expected).item() == pytest.approx(loss.item() / 2, rel=1e-5)


def test_off_it_adds_nothing_and_runs_no_teacher_block() -> None:
    teacher = _teacher()
    calls = []
    teacher[1].register_forward_hook(lambda *_: calls.append(1))
    term = downstream_term(teacher, 0, RecastConfig())
    assert term(torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)).item() == 0
    assert calls == []


@pytest.mark.parametrize("block_loss", ["mse", "fsp"])  # fsp: the step's other loss path
def test_a_step_learns_from_it_and_leaves_the_teacher_alone(loaders, block_loss) -> None:
    """A real ResNet-20 -> plain step on the same two batches with and without the term:
    the term changes what the student learns (it is in the gradient, not only added to
    the reported loss), and the teacher's weights and BN statistics stay as they were."""
    plan = make_plan(walk(build_model("resnet20", width=0.25)), "conv", 1.0)
    first = plan.recast_steps()[0].block.index
    teacher = nn.ModuleList(b.module for b in plan.chain.blocks).eval().requires_grad_(False)
    before = copy.deepcopy(teacher.state_dict())
    learned = {}
    for run, weight in (("off", 0.0), ("off again", 0.0), ("on", 1.0)):
        config = RecastConfig(epochs_per_block=2 / len(loaders[0]), step_output_weight=weight,
                              block_loss=block_loss)
        torch.manual_seed(0)
        loaders[0].generator.manual_seed(0)
        surgery = StudentSurgery(plan, config.init, CPU)
        record = recast_step(surgery, teacher, first, config, loaders[0], loaders[1], CPU,
                             Progress(quiet=True))
        assert record.final_mse > 0
        learned[run] = torch.cat([p.detach().flatten()
                                  for p in surgery.blocks[first].parameters()])
    assert torch.equal(learned["off"], learned["off again"])  # so only the term differs
    assert not torch.allclose(learned["off"], learned["on"])
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    label = block_loss_label(RecastConfig(step_output_weight=0.5))
    assert "0.5 x soft KD (T=4)" in label and "remaining blocks" in label


def test_the_all_at_once_pass_refuses_it_and_a_negative_weight_is_refused() -> None:
    with pytest.raises(RecastError, match="--step-output-weight acts on sequential"):
        make_config("fast", {"step_output_weight": 0.5, "block_training": "local"})
    with pytest.raises(RecastError, match="--step-output-weight -1.0 must be a number >= 0"):
        make_config("fast", {"step_output_weight": -1.0})
