"""The paper preset is the authors' CIFAR schedule (METHOD.md), unchanged."""

import pytest

from recast.engine import RecastConfig
from recast.pipeline import PRESETS


def test_paper_preset_is_the_published_schedule() -> None:
    config = RecastConfig(**PRESETS["paper"])
    assert (config.epochs_per_block, config.finetune_epochs) == (60, 100)
    assert (config.optimizer, config.lr, config.scheduler, config.step_size) == (
        "adam", 1e-3, "step", 20)
    assert (config.batch_size, config.init, config.freeze_prefix) == (64, "random", False)
    assert config.finetune_loss == "mse-ce"


def test_step_schedule_drops_lr_tenfold_every_20_epochs() -> None:
    import torch

    from recast.training import make_optimizer

    params = [torch.nn.Parameter(torch.zeros(1))]
    opt, schedule = make_optimizer(params, RecastConfig(**PRESETS["paper"]).block_schedule(),
                                   total_batches=60 * 10, batches_per_epoch=10)
    lrs = []
    for _ in range(60 * 10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert [round(lrs[i], 7) for i in (0, 199, 200, 400)] == [1e-3, 1e-3, 1e-4, 1e-5]


def test_fast_preset_is_the_benchmarks_headline_variant() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from bench_cifar10 import HEADLINE_VARIANT, VARIANTS

    fraction, overrides = VARIANTS[HEADLINE_VARIANT]
    fast = dict(PRESETS["fast"])
    assert (fast.pop("budget_epochs"), fast.pop("block_fraction")) == (18, fraction)
    assert {k: fast[k] for k in overrides} == overrides
    assert fast["batch_size"] == 128  # as the benchmark


def test_a_budget_splits_between_block_steps_and_fine_tune() -> None:
    config = RecastConfig(**PRESETS["fast"]).for_steps(13)
    assert config.epochs_per_block * 13 == pytest.approx(18 * 0.2)
    assert config.finetune_epochs == pytest.approx(18 * 0.8)
    assert config.budget_epochs is None
