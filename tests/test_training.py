"""recast/training.py: the shared loops, evaluation and device choice."""

import copy

import pytest
import torch
from torch import nn

from recast.errors import RecastError
from recast.training import check_device, evaluate


def test_evaluate_leaves_a_frozen_teacher_in_eval_mode(vgg_teacher, loaders) -> None:
    frozen = nn.Sequential(copy.deepcopy(vgg_teacher).eval())
    wrapper = nn.Sequential(frozen).train()
    frozen.eval()
    evaluate(wrapper, loaders[1], torch.device("cpu"))
    assert wrapper.training and not any(m.training for m in frozen.modules())


@pytest.mark.parametrize("name", ["tpu", "gpu0", "cuda:x"])
def test_an_unknown_device_is_one_line(name) -> None:
    with pytest.raises(RecastError, match="--device"):
        check_device(name)


def _narrow_strided_shortcut() -> nn.Module:
    """A 1x1 stride-2 conv reading 4 channels: the shape whose channels_last backward
    corrupts the heap under oneDNN in torch 2.14 (a 4-channel ResNet-29 shortcut)."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(4, 8, 1, stride=2), nn.Flatten(), nn.LazyLinear(10))


def test_a_model_with_a_narrow_strided_1x1_conv_trains_in_the_default_layout() -> None:
    from recast.progress import Progress
    from recast.training import Schedule, channels_last_safe, run_batches

    model = _narrow_strided_shortcut()
    model(torch.zeros(1, 3, 8, 8))  # materialise the lazy layer
    assert not channels_last_safe(model)
    wide = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1, stride=2))
    assert channels_last_safe(wide) and channels_last_safe(None)
    layouts = []
    model.register_forward_pre_hook(lambda _, args: layouts.append(
        args[0].is_contiguous(memory_format=torch.channels_last)))
    batches = [(torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))] * 2
    result = run_batches(lambda x, y: nn.functional.cross_entropy(model(x), y),
                         list(model.parameters()), batches, Schedule(1, 0.01, "sgd", "cosine"),
                         torch.device("cpu"), Progress(quiet=True), "test", model=model)
    assert result["images"] == 8 and layouts == [False, False]
    seen = []  # any other model still trains on channels_last images, the faster layout
    wide.register_forward_pre_hook(lambda _, args: seen.append(
        args[0].is_contiguous(memory_format=torch.channels_last)))
    run_batches(lambda x, y: wide(x).mean(), list(wide.parameters()), batches[:1],
                Schedule(1, 0.01, "sgd", "cosine"), torch.device("cpu"), Progress(quiet=True),
                "test", model=wide)
    assert seen == [True]


def test_a_warm_up_ramps_the_rate_linearly_then_follows_the_schedule() -> None:
    from recast.training import Schedule, make_optimizer

    weight = nn.Parameter(torch.zeros(1))
    schedule = Schedule(epochs=4, lr=0.1, optimizer="sgd", scheduler="constant", warmup=1)
    opt, lr_schedule = make_optimizer([weight], schedule, total_batches=40,
                                      batches_per_epoch=10)
    rates = []
    for _ in range(12):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        lr_schedule.step()
    assert rates[0] == pytest.approx(0.01)  # a tenth of the rate on the first batch
    assert rates[4] == pytest.approx(0.05)
    assert rates[9:] == pytest.approx([0.1] * 3)  # the full rate from the first epoch's end


def test_the_fine_tune_warm_up_reaches_only_the_fine_tune() -> None:
    from recast.presets import make_config

    config = make_config("fast", {"finetune_warmup": 1.0})
    assert config.finetune_schedule().warmup == 1.0
    assert config.block_schedule().warmup == 0.0



class _NumberedBatches:
    """8 batches of 10 images; every pixel of batch i holds i, and so does its label."""

    def __init__(self) -> None:
        self.batches = [(torch.full((10, 3, 4, 4), float(i)), torch.full((10,), i))
                        for i in range(8)]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


class _Echo(nn.Module):
    """Predicts each image's batch number (right on every image) and notes the batches
    it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def forward(self, x):
        number = int(x[0, 0, 0, 0])
        self.seen.append(number)
        return nn.functional.one_hot(x[:, 0, 0, 0].long(), 10).float()


def test_evaluate_on_some_images_takes_whole_batches_spread_over_the_set() -> None:
    """--step-test-images: a folder of test images comes in class order, so the subset
    is every k-th batch, not the first ones; the last batch taken is cut to size."""
    model = _Echo()
    assert evaluate(model, _NumberedBatches(), torch.device("cpu"), images=35) == 100.0
    assert model.seen == [0, 2, 4, 6]  # 4 batches of 10 over 8: every second one
    model.seen.clear()
    evaluate(model, _NumberedBatches(), torch.device("cpu"))
    assert model.seen == list(range(8))


def test_evaluate_counts_only_the_images_it_was_asked_for() -> None:
    """35 images: 3 whole batches and 5 of the fourth, so one wrong class among those
    5 costs 1/35 of the accuracy, not 1/40."""
    class WrongOnBatch6(_Echo):
        def forward(self, x):
            logits = super().forward(x)
            if int(x[0, 0, 0, 0]) == 6:
                logits[0] = logits[0].roll(1)
            return logits

    accuracy = evaluate(WrongOnBatch6(), _NumberedBatches(), torch.device("cpu"), images=35)
    assert accuracy == pytest.approx(100.0 * 34 / 35)
