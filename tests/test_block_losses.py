"""Block-step losses (recast/losses.py BLOCK_LOSSES, math in recast/feature_losses.py):
each is zero when the student computes what the teacher does, positive and trainable
otherwise, and drives a real recast, sequential or all blocks at once."""

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import recast
from recast.cli import run
from recast.datasets import BatchLoader
from recast.feature_losses import (attention_transfer, cosine_distance, fsp_loss, fsp_matrix,
                                   matching_channels)
from recast.losses import BLOCK_LOSSES, LOSS_WEIGHTS
from recast.models import build_model
from recast.flags import config_flags
from recast.settings import RecastConfig
from tests.conftest import SMALL, cli_error


def _tiny(seed: int) -> nn.Sequential:
    """A two-conv block with a stride: its input and output maps differ in size."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU())


def _compare(name: str):
    return BLOCK_LOSSES[name].make(LOSS_WEIGHTS)


def test_the_registry_drives_the_flag_and_mse_is_the_default() -> None:
    flag = dict(config_flags())["--block-loss"]
    assert flag["choices"] == list(BLOCK_LOSSES) == ["mse", "at", "fsp", "cosine"]
    assert RecastConfig().block_loss == "mse" and "(the authors')" in flag["help"]


def test_mse_is_the_mse_the_steps_always_took() -> None:
    s, t = torch.randn(4, 8, 5, 5), torch.randn(4, 8, 5, 5)
    assert torch.equal(_compare("mse")(s, t, None, None), F.mse_loss(s, t))


@pytest.mark.parametrize("name", list(BLOCK_LOSSES))
def test_zero_for_the_teacher_positive_and_trainable_otherwise(name: str) -> None:
    teacher, x = _tiny(0).requires_grad_(False), torch.randn(8, 3, 8, 8)
    compare = _compare(name)
    same = compare(copy.deepcopy(teacher)(x), teacher(x), x, x)
    assert same.item() == pytest.approx(0, abs=1e-6)
    student = _tiny(1)
    optimizer = torch.optim.Adam(student.parameters(), 1e-2)
    losses = []
    for _ in range(30):
        loss = compare(student(x), teacher(x), x, x)
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 1e-4 and losses[-1] < 0.7 * losses[0], losses


def test_attention_transfer_ignores_width_and_scale_but_not_where() -> None:
    """AT compares where a map is active: a student twice as wide and three times as
    loud with the same spatial energy matches; a shifted one does not."""
    t = torch.randn(4, 8, 6, 6)
    assert attention_transfer(3 * torch.cat([t, t], 1), t).item() == pytest.approx(0, abs=1e-7)
    assert attention_transfer(t.roll(2, dims=3), t) > 0
    assert attention_transfer(t.roll(2, dims=3), t, 2000.0) == \
        pytest.approx(2 * attention_transfer(t.roll(2, dims=3), t).item())


def test_cosine_ignores_scale() -> None:
    t = torch.randn(4, 8, 6, 6)
    assert cosine_distance(2.5 * t, t).item() == pytest.approx(0, abs=1e-6)
    assert cosine_distance(-t, t).item() == pytest.approx(2, abs=1e-6)


def test_fsp_pools_across_a_stride_and_compares_kept_channels() -> None:
    x, out = torch.randn(2, 3, 8, 8), torch.randn(2, 5, 4, 4)
    g = fsp_matrix(x, out)
    assert g.shape == (2, 3, 5)
    assert torch.allclose(g, torch.einsum("nihw,njhw->nij", F.avg_pool2d(x, 2), out) / 16)
    teacher_in = torch.randn(2, 6, 8, 8)
    kept = torch.tensor([4, 0, 2])
    student_in, matched = matching_channels(teacher_in[:, kept], teacher_in, kept)
    assert torch.equal(matched, student_in)
    assert fsp_loss(out, out, student_in, matched).item() == 0
    first = matching_channels(teacher_in[:, :3], teacher_in, None)[1]  # no kept: first ones
    assert torch.equal(first, teacher_in[:, :3])


class Tiny(nn.Module):
    """Three conv blocks and a head: a recast of it takes seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.conv3, self.bn3 = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@pytest.fixture(scope="module")
def tiny_loaders():
    from recast.datasets import load_data

    if not SMALL.is_dir():
        pytest.skip(f"{SMALL} is missing")
    data = load_data("cifar10", SMALL)
    return (BatchLoader(data.train.limit(128), data.mean, data.std, 64, seed=0),
            BatchLoader(data.test.limit(64), data.mean, data.std, 64, train=False))


def _recast(loaders, block_loss: str, **more) -> recast.RecastResult:
    """Two batches per step, no fine-tune, through the public API."""
    torch.manual_seed(0)
    config = RecastConfig(epochs_per_block=1.0, finetune_epochs=0.0, block_loss=block_loss,
                          **more)
    return recast.recast(Tiny().eval(), "conv", 0.5, train_loader=loaders[0],
                         test_loader=loaders[1], config=config, device="cpu")


@pytest.fixture(scope="module")
def mse_student(tiny_loaders) -> dict[str, torch.Tensor]:
    return _recast(tiny_loaders, "mse").student.state_dict()


@pytest.mark.parametrize("block_loss, more", [
    ("at", {}), ("fsp", {}), ("cosine", {}),
    # no kept channels (FSP on the first input channels), the prefix under no_grad
    ("fsp", {"init": "random", "freeze_prefix": True}),
    ("fsp", {"block_training": "local"}),
])
def test_a_recast_trains_on_the_block_loss(tiny_loaders, block_loss: str, more: dict,
                                           mse_student) -> None:
    """A narrowing recast (width 0.5) runs every step on the loss, and the loss matters:
    the student is not the one MSE steps give."""
    result = _recast(tiny_loaders, block_loss, **more)
    steps = [b["step"] for b in result.report["blocks"] if b.get("step")]
    assert len(steps) == 3 and all(s["final_mse"] > 0 for s in steps)
    assert all(torch.isfinite(v).all() for v in result.student.state_dict().values())
    assert result.student(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    if not more:
        assert any(not torch.equal(v, mse_student[k])
                   for k, v in result.student.state_dict().items())


def test_the_cli_takes_the_block_loss_and_logs_it(tmp_path, capsys) -> None:
    if not SMALL.is_dir():
        pytest.skip(f"{SMALL} is missing")
    torch.manual_seed(0)
    teacher = tmp_path / "teacher.safetensors"
    save_file(build_model("vgg11", width=0.125).state_dict(), str(teacher))
    out = tmp_path / "run"
    assert run(["vgg11", "--teacher-width", "0.125", "--target", "conv", "--width", "0.4",
                "--data-dir", str(SMALL), "--teacher", str(teacher), "--preset", "smoke",
                "--limit-train", "128", "--limit-test", "64", "--block-loss", "fsp",
                "--finetune-loss", "at+kd", "--at-weight", "500", "--quiet",
                "--out", str(out)]) == 0
    log = capsys.readouterr().err
    assert "block steps: FSP" in log and "fine-tune: attention transfer" in log
    assert log.count("block steps:") == 1  # said once, before the first step
    assert "(beta 500)" in json.loads((out / "report.json").read_text())["finetune_loss"]
    config = json.loads((out / "config.json").read_text())["recast"]
    assert config["block_loss"] == "fsp" and config["at_weight"] == 500
    err = cli_error(capsys, ["vgg11", "--target", "conv", "--data-dir", str(SMALL),
                             "--block-loss", "at", "--at-weight", "-1", "--out",
                             str(tmp_path / "bad")])
    assert "--at-weight -1.0 must be a number >= 0" in err
