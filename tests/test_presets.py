"""The paper preset is the authors' CIFAR schedule (METHOD.md), unchanged."""

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
