"""The full pipeline on real CIFAR-10 images with tiny models: a system test."""

import copy

import pytest
import torch
from torch import nn

import recast
from recast.engine import RecastConfig
from recast.training import evaluate

FAST = RecastConfig(epochs_per_block=0.5, finetune_epochs=1, batch_size=64)


@pytest.fixture(scope="module")
def vgg_result(vgg_teacher, loaders):
    return recast.recast(copy.deepcopy(vgg_teacher), "conv", 0.5, train_loader=loaders[0],
                         test_loader=loaders[1], config=FAST)


def test_vgg_student_has_the_planned_parameter_count(vgg_result) -> None:
    planned = sum(p.numel() for p in vgg_result.plan.build_student().parameters())
    assert sum(p.numel() for p in vgg_result.student.parameters()) == planned
    assert vgg_result.report["student"]["params"] == planned


def test_vgg_student_is_far_above_chance(vgg_result) -> None:
    assert vgg_result.report["teacher"]["accuracy"] > 30
    assert vgg_result.report["student"]["accuracy"] > 25  # chance is 10


def test_report_records_every_step(vgg_result) -> None:
    steps = [b["step"] for b in vgg_result.report["blocks"] if "step" in b]
    assert len(steps) == 8
    assert all(s["final_mse"] >= 0 and 0 <= s["accuracy_after"] <= 100 for s in steps)
    assert all(s["warm_start"] for s in steps)


def test_saved_student_gives_identical_logits(vgg_result, tmp_path, loaders) -> None:
    vgg_result.save(tmp_path)
    loaded = recast.load_student(tmp_path)
    x, _ = next(iter(loaders[1]))
    with torch.no_grad():
        assert torch.equal(vgg_result.student.eval()(x), loaded(x))
    assert evaluate(loaded, loaders[1], torch.device("cpu")) == \
        vgg_result.report["student"]["accuracy"]


def test_student_file_holds_no_pickle(vgg_result, tmp_path) -> None:
    vgg_result.save(tmp_path)
    assert (tmp_path / "student.safetensors").read_bytes()[:1] != b"\x80"
    assert sorted(p.name for p in tmp_path.iterdir()
                  if p.name not in ("plots", "tensorboard")) == [
        "config.json", "report.json", "report.md", "student.json", "student.safetensors"]


def test_resnet_to_plain_conv_net(resnet_teacher, loaders) -> None:
    result = recast.recast(copy.deepcopy(resnet_teacher), "conv", 1.0,
                           train_loader=loaders[0], test_loader=loaders[1], config=FAST)
    kinds = [type(m).__name__ for m in result.student]
    assert kinds.count("ConvBlock") == 9
    assert result.report["student"]["accuracy"] > 20
    assert result.report["student"]["params"] < result.report["teacher"]["params"]


def test_random_init_and_frozen_prefix_run(vgg_teacher, loaders) -> None:
    config = RecastConfig(epochs_per_block=0.1, finetune_epochs=0.1, init="random",
                          freeze_prefix=True)
    result = recast.recast(copy.deepcopy(vgg_teacher), "conv", 0.5, train_loader=loaders[0],
                           test_loader=loaders[1], config=config)
    steps = [b["step"] for b in result.report["blocks"] if "step" in b]
    assert not any(s["warm_start"] for s in steps)


def test_same_seed_gives_same_student(vgg_teacher, loaders) -> None:
    from recast.datasets import BatchLoader

    config = RecastConfig(epochs_per_block=0.05, finetune_epochs=0.05)
    outs = []
    for _ in range(2):
        train = BatchLoader(loaders[0].data, loaders[0].mean.flatten().div(255).tolist(),
                            loaders[0].std.flatten().div(255).tolist(), 64, seed=3)
        result = recast.recast(copy.deepcopy(vgg_teacher), "conv", 0.5, train_loader=train,
                               test_loader=loaders[1], config=config)
        outs.append(result.student.state_dict())
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])


def test_a_plan_made_before_the_weights_were_loaded_sees_them(vgg_teacher, loaders) -> None:
    """The CLI plans before it trains or loads the teacher (a bad plan fails first)
    and hands that plan to recast: its blocks must be the teacher's own modules."""
    from recast.models import build_model
    from recast.plan import make_plan
    from recast.walker import walk

    fresh = build_model("vgg11", width=0.25).eval()
    plan = make_plan(walk(fresh), "conv", 0.5)
    fresh.load_state_dict(vgg_teacher.state_dict())  # in place, as load_teacher does
    images = next(iter(loaders[1]))[0][:8]
    with torch.no_grad():
        assert torch.allclose(plan.chain.as_module()(images), vgg_teacher.eval()(images),
                              atol=1e-5)
    short = RecastConfig(epochs_per_block=0.1, finetune_epochs=0.1, batch_size=64)
    result = recast.recast(fresh, "conv", 0.5, train_loader=loaders[0],
                           test_loader=loaders[1], config=short, plan=plan)
    assert result.plan is plan
    assert result.report["teacher"]["accuracy"] == pytest.approx(
        evaluate(vgg_teacher, loaders[1], torch.device("cpu")), abs=0.01)


class _Shift(nn.Module):
    """Adds a buffer it reads itself: the walk copies such a buffer into its block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("offset", torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.offset


def test_a_plan_whose_copied_buffers_went_stale_is_made_again() -> None:
    """A device move (here a dtype round trip, the same for buffers) replaces the
    teacher's buffers; a plan still holding the old copies must not be used."""
    from recast.plan import make_plan
    from recast.pipeline import reads_teacher
    from recast.walker import walk

    teacher = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False),
                                          nn.BatchNorm2d(8), nn.ReLU(), _Shift(8)),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).eval()
    plan = make_plan(walk(teacher, (1, 3, 8, 8)), "conv", 0.5)
    assert reads_teacher(plan, teacher)
    teacher.double().float()
    assert not reads_teacher(plan, teacher)
    with pytest.raises(recast.RecastError, match="recasts into conv blocks, not basic"):
        recast.recast(teacher, "basic", 0.5, train_loader=None, test_loader=None,
                      input_shape=(1, 3, 8, 8), plan=plan)


def test_step_accuracy_on_some_test_images_is_said_in_the_report(vgg_teacher,
                                                                  loaders) -> None:
    """--step-test-images 300 over 4 test batches of 250: each step's accuracy is a
    count out of 300 images (one whole batch and part of another), the finished
    student's is on the whole set, and report.md says which is which."""
    from recast.run_report import run_markdown

    config = RecastConfig(epochs_per_block=0.05, finetune_epochs=0.05, step_test_images=300)
    result = recast.recast(copy.deepcopy(vgg_teacher), "conv", 0.5, train_loader=loaders[0],
                           test_loader=loaders[1], config=config)
    steps = [b["step"] for b in result.report["blocks"] if "step" in b]
    counts = [s["accuracy_after"] * 300 / 100 for s in steps]
    assert all(abs(c - round(c)) < 0.02 for c in counts)  # rounded to 2 places
    assert any(abs(c * 1000 / 300 - round(c * 1000 / 300)) > 0.02 for c in counts), \
        "every step's accuracy is also a count out of 1000: the whole set was read"
    assert result.report["student"]["accuracy"] == pytest.approx(
        evaluate(result.student, loaders[1], torch.device("cpu")), abs=0.01)
    assert "measured on 300 test images" in run_markdown(result.report)
