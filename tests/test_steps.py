"""recast/steps.py: each of the paper's six recasting types runs one real recast step."""

import pytest
import torch

from recast.progress import Progress
from recast.settings import RecastConfig
from recast.steps import CLOSED_FORM, INPUT_CONVS, StepRecord, recast_step
from recast.surgery import StudentSurgery
from recast.models import build_model
from recast.plan import make_plan
from recast.walker import walk


@pytest.mark.parametrize("model,width,target", [
    ("densenet_bc_100_12", 0.125, "basic"),
    ("densenet_bc_100_12", 0.125, "conv"),
    ("resnet20", 0.5, "conv"),
    ("resnet83", 0.25, "conv"),
    ("wrn_16_4", 0.25, "basic"),
    ("vgg11", 0.25, "conv"),
])
def test_one_step_trains_and_keeps_the_chain_runnable(model, width, target, loaders) -> None:
    plan = make_plan(walk(build_model(model, width=width)), target, 0.5)
    config = RecastConfig(epochs_per_block=3 / len(loaders[0]))  # three batches
    surgery = StudentSurgery(plan, config.init, torch.device("cpu"))
    teacher = torch.nn.ModuleList(b.module for b in plan.chain.blocks).eval()
    first = plan.recast_steps()[0].block.index
    record = recast_step(surgery, teacher, first, config, loaders[0], loaders[1],
                         torch.device("cpu"), Progress(quiet=True))
    assert record.images == 3 * 64 and record.final_mse > 0
    assert record.loss_at > first  # the next block was rebuilt (dimension mismatch)
    x, _ = next(iter(loaders[1]))
    with torch.no_grad():
        hybrid = torch.nn.Sequential(*surgery.blocks[:record.loss_at + 1])
        prefix = torch.nn.Sequential(*teacher[:record.loss_at + 1])
        assert hybrid.eval()(x[:2]).shape == prefix(x[:2]).shape


@pytest.mark.parametrize("model,width,hidden,fresh", [
    ("densenet_bc_100_12", 0.125, "principal", True),  # dense -> basic: conv1 is random
    ("wrn_16_4", 0.25, "principal", False),  # the warm start copied the teacher's conv1
    ("densenet_bc_100_12", 0.125, "random", False),
])
def test_principal_hidden_only_replaces_a_conv1_no_warm_start_filled(
        model, width, hidden, fresh, loaders, monkeypatch) -> None:
    import recast.steps

    seen = []

    def recording(*args, **kwargs):
        seen.append(kwargs.get("fresh", False))
        return solve_step(*args, **kwargs)

    solve_step = recast.steps.solve_step
    monkeypatch.setattr(recast.steps, "solve_step", recording)
    plan = make_plan(walk(build_model(model, width=width)), "basic", 0.5)
    config = RecastConfig(epochs_per_block=1 / len(loaders[0]), solve="target",
                          solve_hidden=hidden)
    surgery = StudentSurgery(plan, config.init, torch.device("cpu"),
                             fit_steps=[s.block.index for s in plan.recast_steps()])
    teacher = torch.nn.ModuleList(b.module for b in plan.chain.blocks).eval()
    first = plan.recast_steps()[0].block.index
    record = recast_step(surgery, teacher, first, config, loaders[0], loaders[1],
                         torch.device("cpu"), Progress(quiet=True))
    assert seen == [fresh]
    assert record.fit_mse_after is not None and record.fit_mse_after < record.fit_mse_before
    assert record.fit_kind == CLOSED_FORM and record.solved_start


def test_solve_input_re_solves_only_targets_whose_input_was_narrowed(loaders) -> None:
    plan = make_plan(walk(build_model("vgg11", width=0.25)), "conv", 0.5)
    config = RecastConfig(epochs_per_block=1 / len(loaders[0]), solve="input")
    surgery = StudentSurgery(plan, config.init, torch.device("cpu"))
    teacher = torch.nn.ModuleList(b.module for b in plan.chain.blocks).eval()
    first, second = (s.block.index for s in plan.recast_steps()[:2])
    records = [recast_step(surgery, teacher, index, config, loaders[0], loaders[1],
                           torch.device("cpu"), Progress(quiet=True))
               for index in (first, second)]
    assert records[0].fit_mse_before is None  # it reads the images: nothing dropped
    assert records[1].fit_kept and records[1].fit_mse_after < records[1].fit_mse_before
    assert records[0].fit_kind is None and records[1].fit_kind == INPUT_CONVS
    assert not records[1].solved_start  # the warm start's target, its inputs re-solved


@pytest.mark.parametrize("solve, kind", [("auto", CLOSED_FORM), ("input", INPUT_CONVS)])
def test_a_checkpoint_from_before_fit_kinds_resumes_with_its_runs_kind(solve, kind) -> None:
    """The fine-tune warm-up a resume settles follows a closed-form start only, so a step
    saved without its fit's kind takes it from the run's --solve."""
    fitted = StepRecord(3, "layer1.0", "basic", "conv", 3, 0.1, 50.0, 1.0, 64, True,
                        fit_mse_before=0.5, fit_mse_after=0.2).to_json()
    fitted.pop("fit_kind")
    restored = StepRecord.from_json(fitted, solve)
    assert restored.fit_kind == kind
    assert restored.solved_start is (kind == CLOSED_FORM)
    unfitted = dict(fitted, fit_mse_before=None, fit_mse_after=None)
    assert StepRecord.from_json(unfitted, solve).fit_kind is None
