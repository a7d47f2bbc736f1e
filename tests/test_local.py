"""All-blocks-at-once recasting (recast/local.py) and the whole-student warm start."""

import copy

import pytest
import torch
from torch import nn

from recast.engine import RecastConfig, Recaster
from recast.local import LocalMatch, teacher_outputs, train_local
from recast.models import build_model
from recast.plan import make_plan
from recast.training import Schedule, evaluate
from recast.walker import walk
from recast.warmstart import conv_bn_pairs, warm_student


def _plan(teacher, target="conv", width=0.5):
    return make_plan(walk(teacher, (1, 3, 32, 32)), target, width)


def _first_conv(block: nn.Module) -> nn.Conv2d:
    """A target block, or a target block followed by the teacher's tail (pooling)."""
    return next(m for m in block.modules() if isinstance(m, nn.Conv2d))


def test_warm_student_slices_the_teachers_channels(vgg_teacher) -> None:
    plan = _plan(vgg_teacher)
    blocks, kept = warm_student(plan)
    for step, block, keep in zip(plan.steps, blocks, kept):
        if step.recast:
            assert len(keep) == step.out_channels
    first_teacher, _ = conv_bn_pairs(plan.steps[0].block.module)[0]
    assert torch.equal(_first_conv(blocks[0]).weight, first_teacher.weight[kept[0]])
    second_teacher, _ = conv_bn_pairs(plan.steps[1].block.module)[0]
    assert torch.equal(_first_conv(blocks[1]).weight, second_teacher.weight[kept[1]][:, kept[0]])
    student = nn.Sequential(*blocks).eval()
    assert student(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_warm_student_at_full_width_is_the_teacher(vgg_teacher) -> None:
    blocks, _ = warm_student(_plan(vgg_teacher, width=1.0))
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(nn.Sequential(*blocks).eval()(x), vgg_teacher(x), atol=1e-4)


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
    from recast.progress import Progress

    result = train_local(plan, teacher, student, kept, loaders[0], Schedule(1.0, 3e-3),
                         torch.device("cpu"), Progress(quiet=True))
    assert set(result["trained"]) >= {s.block.index for s in plan.recast_steps()}

    x = next(iter(loaders[1]))[0][:64]
    targets = teacher_outputs(teacher, x)
    from recast.local import local_matches

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


def test_unknown_block_training_is_a_clear_error(vgg_teacher, loaders) -> None:
    from recast.errors import RecastError

    config = RecastConfig(block_training="parallel")
    with pytest.raises(RecastError, match="sequential or local"):
        Recaster(_plan(vgg_teacher), config, torch.device("cpu")).run(*loaders)


def test_evaluate_leaves_a_frozen_teacher_in_eval_mode(vgg_teacher, loaders) -> None:
    from recast.training import evaluate

    frozen = nn.Sequential(copy.deepcopy(vgg_teacher).eval())
    wrapper = nn.Sequential(frozen).train()
    frozen.eval()
    evaluate(wrapper, loaders[1], torch.device("cpu"))
    assert wrapper.training and not any(m.training for m in frozen.modules())


def test_sequential_recast_keeps_the_teacher_in_eval_mode(vgg_teacher, loaders) -> None:
    config = RecastConfig(epochs_per_block=0.05, finetune_epochs=0.05)
    recaster = Recaster(_plan(vgg_teacher), config, torch.device("cpu"))
    before = copy.deepcopy(recaster.teacher.state_dict())
    recaster.run(*loaders)
    assert not any(m.training for m in recaster.teacher.modules())
    assert all(torch.equal(v, recaster.teacher.state_dict()[k]) for k, v in before.items())


def test_basic_to_conv_warm_start_is_the_shortcut_path(resnet_teacher) -> None:
    """Each conv starts as relu(shortcut(x)): the basic block minus its residual branch."""
    from recast.warmstart import can_warm_start

    plan = _plan(resnet_teacher, width=1.0)
    blocks, _ = warm_student(plan)
    assert can_warm_start("basic", "conv")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for step, student in zip(plan.steps, blocks):
            if step.block.kind == "basic":
                layers = dict(step.block.module.named_modules())
                side = [layers[k] for k in layers if "downsample" in k and
                        isinstance(layers[k], (nn.Conv2d, nn.BatchNorm2d))]
                expected = torch.relu(side[1](side[0](x)) if side else x)
                assert torch.allclose(student.eval()(x), expected, atol=1e-4)
            x = step.block.module(x)


@pytest.mark.parametrize("loss, teacher_runs", [("ce", False), ("kd", True)])
def test_only_a_distilling_finetune_runs_the_teacher(vgg_teacher, loaders, loss,
                                                     teacher_runs) -> None:
    """finetune_loss='ce' is the cheap fine-tune: a pass costs a scratch pass."""
    config = RecastConfig(epochs_per_block=0.05, finetune_epochs=0.1, finetune_loss=loss)
    recaster = Recaster(_plan(vgg_teacher), config, torch.device("cpu"))
    calls = []
    recaster.teacher[0].register_forward_hook(lambda *_: calls.append(1))
    result = recaster.finetune(loaders[0])
    assert bool(calls) == teacher_runs
    assert result["images"] > 0 and torch.isfinite(torch.tensor(result["loss"]))
