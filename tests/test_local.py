"""recast/local.py: all target blocks at once, each on its own input."""

import copy

import pytest
import torch
from torch import nn

from recast.engine import Recaster
from recast.local import LocalMatch, local_matches, teacher_outputs, train_local
from recast.plan import make_plan
from recast.progress import Progress
from recast.settings import RecastConfig
from recast.training import Schedule
from recast.walker import walk
from recast.warmstart import warm_student


def _plan(teacher, target="conv", width=0.5):
    return make_plan(walk(teacher, (1, 3, 32, 32)), target, width)


def test_local_match_modes() -> None:
    same = LocalMatch(torch.Size([1, 4, 8, 8]), torch.Size([1, 4, 8, 8]), None)
    kept = LocalMatch(torch.Size([1, 2, 8, 8]), torch.Size([1, 4, 8, 8]), torch.tensor([1, 3]))
    probe = LocalMatch(torch.Size([1, 2, 8, 8]), torch.Size([1, 4, 8, 8]), None)
    assert (same.mode, kept.mode, probe.mode) == ("same", "kept", "probe")
    teacher = torch.randn(1, 4, 8, 8)
    assert kept.loss(teacher[:, [1, 3]], teacher).item() == 0.0
    with pytest.raises(ValueError, match="cannot compare"):
        LocalMatch(torch.Size([1, 2, 4, 4]), torch.Size([1, 4, 8, 8]), None)


@pytest.mark.parametrize("init", ["teacher", "random"])
def test_local_pass_lowers_every_blocks_loss(vgg_teacher, loaders, init) -> None:
    plan = _plan(vgg_teacher)
    teacher = nn.ModuleList(b.module for b in plan.chain.blocks).eval()
    blocks, kept = warm_student(plan, init=init)
    student = nn.ModuleList(blocks)
    before = copy.deepcopy(student)
    result = train_local(plan, teacher, student, kept, loaders[0], Schedule(1.0, 3e-3),
                         torch.device("cpu"), Progress(quiet=True))
    assert set(result["trained"]) >= {s.block.index for s in plan.recast_steps()}

    x = next(iter(loaders[1]))[0][:64]
    targets = teacher_outputs(teacher, x)
    def errors(model):
        matches = local_matches(teacher, model, kept, x)
        out, values = x, []
        with torch.no_grad():
            for i, block in enumerate(model.eval()):
                out = block(out)
                if matches[i].mode != "probe":
                    values.append(matches[i].loss(out, targets[i]).item())
        return values

    assert sum(errors(student)) < sum(errors(before))


def test_local_recast_runs_end_to_end_and_counts_images_once(vgg_teacher, loaders) -> None:
    plan = _plan(vgg_teacher)
    config = RecastConfig(epochs_per_block=0.5, finetune_epochs=0.5, block_training="local")
    outcome = Recaster(plan, config, torch.device("cpu")).run(*loaders)
    per_epoch = len(loaders[0].dataset) if hasattr(loaders[0], "dataset") else None
    assert len(outcome.steps) == len(plan.recast_steps())
    assert all(s.together for s in outcome.steps)
    assert outcome.images == outcome.steps[0].images + int(outcome.finetune["images"])
    if per_epoch:
        assert outcome.images == pytest.approx(per_epoch, rel=0.1)
    assert outcome.accuracy > 20  # 10 classes: chance is 10%
