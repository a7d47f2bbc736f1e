"""recast/engine.py: the order of events. A NaN or infinite loss reruns the phase once at
a tenth of the rate, then fails clearly; the teacher stays frozen; a bad setting is refused."""

import copy

import pytest
import torch

import recast.finetune
import recast.steps
from recast.engine import Recaster
from recast.settings import RecastConfig
from recast.errors import NonFiniteLoss, RecastError
from recast.plan import make_plan
from recast.walker import walk


def _recaster(teacher) -> Recaster:
    plan = make_plan(walk(teacher, (1, 3, 32, 32)), "conv", 0.5)
    return Recaster(plan, RecastConfig(epochs_per_block=0.05, finetune_epochs=0.05, lr=1e-3),
                    torch.device("cpu"))


def _failing(monkeypatch, fail_at: set[int]) -> list[float]:
    """run_batches that reports a NaN loss on the calls numbered in ``fail_at``."""
    real, rates = recast.steps.run_batches, []

    def run_batches(loss_fn, params, loader, schedule, *args, **kwargs):
        rates.append(schedule.lr)
        if len(rates) in fail_at:
            raise NonFiniteLoss("the loss became nan at batch 0")
        return real(loss_fn, params, loader, schedule, *args, **kwargs)

    monkeypatch.setattr(recast.steps, "run_batches", run_batches)
    monkeypatch.setattr(recast.finetune, "run_batches", run_batches)
    return rates


def test_a_nan_step_is_retried_at_a_tenth_of_the_rate(vgg_teacher, loaders,
                                                      monkeypatch) -> None:
    rates = _failing(monkeypatch, {2})
    outcome = _recaster(vgg_teacher).run(*loaders)
    assert rates[:4] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-3])  # step 2 again, then step 3
    assert len(outcome.steps) == len(set(s.index for s in outcome.steps))


def test_a_nan_that_repeats_fails_with_the_fix(vgg_teacher, loaders, monkeypatch) -> None:
    _failing(monkeypatch, {1, 2})
    with pytest.raises(RecastError, match="stayed non-finite.*lower it further"):
        _recaster(vgg_teacher).run(*loaders)


def test_sequential_recast_keeps_the_teacher_in_eval_mode(vgg_teacher, loaders) -> None:
    recaster = _recaster(vgg_teacher)
    before = copy.deepcopy(recaster.teacher.state_dict())
    recaster.run(*loaders)
    assert not any(m.training for m in recaster.teacher.modules())
    assert all(torch.equal(v, recaster.teacher.state_dict()[k]) for k, v in before.items())


def test_unknown_block_training_is_a_clear_error(vgg_teacher) -> None:
    plan = make_plan(walk(vgg_teacher, (1, 3, 32, 32)), "conv", 0.5)
    with pytest.raises(RecastError, match="--block-training.*sequential, local"):
        Recaster(plan, RecastConfig(block_training="parallel"), torch.device("cpu"))


def test_a_loss_not_finite_before_any_update_is_not_blamed_on_the_rate(vgg_teacher, loaders,
                                                                       monkeypatch) -> None:
    real = recast.steps.run_batches

    def run_batches(*args, **kwargs):
        raise NonFiniteLoss("the loss became inf at batch 0", first_batch=True)

    monkeypatch.setattr(recast.steps, "run_batches", run_batches)
    with pytest.raises(RecastError, match="first batch.*learning rate is not to blame"):
        _recaster(vgg_teacher).run(*loaders)
    assert real is not run_batches


@pytest.mark.parametrize("teacher, transforms", [("resnet_teacher", True),
                                                 ("vgg_teacher", False)])
def test_solve_auto_fits_the_steps_that_change_kind_then_warms_the_fine_tune_up(
        request, loaders, teacher, transforms, monkeypatch) -> None:
    """basic -> conv is fitted in closed form and its fine-tune ramps up and learns from
    the teacher before CE (--finetune-loss auto); conv -> conv keeps its warm start alone
    and a CE fine-tune at the planned rate from its start."""
    real, warmups = recast.finetune.run_batches, []

    def run_batches(loss_fn, params, loader, schedule, *args, **kwargs):
        warmups.append(schedule.warmup)
        return real(loss_fn, params, loader, schedule, *args, **kwargs)

    monkeypatch.setattr(recast.finetune, "run_batches", run_batches)
    plan = make_plan(walk(request.getfixturevalue(teacher), (1, 3, 32, 32)), "conv", 0.5)
    recaster = Recaster(plan, RecastConfig(epochs_per_block=0.02, finetune_epochs=0.05,
                                           solve="auto", finetune_loss="auto"),
                        torch.device("cpu"))
    outcome = recaster.run(*loaders)
    kinds = {(s.kind, s.target) for s in outcome.steps}
    assert kinds == ({("basic", "conv")} if transforms else {("conv", "conv")})
    assert all(s.fit_kept for s in outcome.steps) is transforms
    assert not any(s.fit_mse_after is not None for s in outcome.steps if not transforms)
    assert warmups == [pytest.approx(0.005) if transforms else 0.0]
    settled = recaster.config
    assert (settled.finetune_loss, settled.finetune_teacher_share) == \
        (("kd", 0.25) if transforms else ("ce", 1.0))
