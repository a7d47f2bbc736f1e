"""A killed run resumes from its last checkpoint and ends with the same student."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from recast.checkpoint import CheckpointStore, join_optimizer, split_optimizer
from recast.cli import run
from recast.errors import RecastError, Stopped

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT.parent / "shared" / "data" / "cifar10-small"
# a whole run in seconds: teacher trained in the run, 8 steps, 3 fine-tune passes
ARGS = ["vgg11", "--teacher-width", "0.125", "--teacher-epochs", "1", "--target", "conv",
        "--width", "0.5", "--data-dir", str(SMALL), "--limit-train", "256", "--limit-test",
        "64", "--epochs-per-block", "1", "--finetune-epochs", "3", "--batch-size", "64",
        "--quiet", "--seed", "0"]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "student.safetensors"))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The student of an uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert run([*ARGS, "--out", str(out)]) == 0
    assert not (out / "checkpoint").exists()  # removed once the student is saved
    return _weights(out)


def test_optimizer_state_survives_the_round_trip() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    tensors, rest = split_optimizer(opt.state_dict())
    restored = torch.optim.Adam(model.parameters(), lr=0.1)
    restored.load_state_dict(join_optimizer(tensors, json.loads(json.dumps(rest))))
    assert torch.equal(restored.state_dict()["state"][0]["exp_avg"],
                       opt.state_dict()["state"][0]["exp_avg"])
    assert restored.state_dict()["param_groups"][0]["lr"] == 0.1


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch) -> None:
    store = CheckpointStore(tmp_path)
    model = torch.nn.Linear(2, 2)
    store.save({"phase": "steps", "n": 1}, model)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("recast.checkpoint.save_file", disk_full)
    with pytest.raises(RecastError, match="No space left.*previous checkpoint is kept"):
        store.save({"phase": "steps", "n": 2}, model)
    latest = store.latest()
    assert latest["n"] == 1 and _same(store.weights(latest), model.state_dict())


def test_a_folder_with_a_run_is_refused_naming_resume_and_force(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "run-args.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    assert run([*ARGS, "--out", str(out)]) == 2
    message = capsys.readouterr().err
    assert "--resume" in message and "--force" in message and message.count("\n") == 1
    assert (out / "notes.txt").read_text() == "mine"


def test_resume_needs_a_run_to_resume(tmp_path, capsys) -> None:
    assert run([*ARGS, "--out", str(tmp_path / "empty"), "--resume"]) == 2
    assert "holds no recast run" in capsys.readouterr().err


def test_force_starts_over_and_keeps_other_files(tmp_path, reference) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    assert run([*ARGS, "--out", str(out), "--force"]) == 0
    assert _same(_weights(out), reference)
    assert (out / "notes.txt").read_text() == "mine"


def _crash_before_pointer_swap(monkeypatch, args: list[str], out: Path, number: int) -> None:
    """Run until checkpoint ``number`` is written but latest.json not yet moved to it."""
    import recast.checkpoint

    real = recast.checkpoint.atomic_write_text
    calls = {"n": 0}

    def crashing(path, text):
        calls["n"] += 1
        if calls["n"] == number:
            raise SystemExit("simulated crash")
        real(path, text)

    monkeypatch.setattr(recast.checkpoint, "atomic_write_text", crashing)
    with pytest.raises(SystemExit):
        run([*args, "--out", str(out)])
    monkeypatch.setattr(recast.checkpoint, "atomic_write_text", real)


def test_crash_between_checkpoint_write_and_pointer_swap(tmp_path, monkeypatch,
                                                         reference) -> None:
    out = tmp_path / "run"
    _crash_before_pointer_swap(monkeypatch, ARGS, out, 5)
    assert (out / "checkpoint" / "ckpt-000005" / "state.json").is_file()
    assert json.loads((out / "checkpoint" / "latest.json").read_text())["checkpoint"] \
        == "ckpt-000004"
    assert run([*ARGS, "--out", str(out), "--resume"]) == 0
    assert _same(_weights(out), reference)


def _checkpoints(out: Path) -> int:
    try:
        name = json.loads((out / "checkpoint" / "latest.json").read_text())["checkpoint"]
    except (OSError, ValueError):
        return 0
    return int(name.split("-")[1])


def test_sigkill_at_random_moments_then_resume_gives_the_same_student(tmp_path,
                                                                      reference) -> None:
    """Killed during teacher training, a recast step and the fine-tune, then resumed."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "recast", *ARGS, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    chance = random.Random(0)
    kills = []
    # kill once the run has got this far (checkpoints written; 0: started), plus a
    # random delay: lands in teacher training, recast steps and the fine-tune
    for attempt, reached in enumerate((0, 2, 6, 9)):
        process = subprocess.Popen(command + (["--resume"] if attempt else []), env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while process.poll() is None and not (
                (out / "run-args.json").is_file() and _checkpoints(out) >= reached):
            time.sleep(0.05)
        time.sleep(chance.uniform(0.0, 0.6))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills.append(_checkpoints(out))
        process.wait()
    if not (out / "report.json").is_file():
        subprocess.run(command + ["--resume"], env=env, check=True, capture_output=True)
    assert len(kills) >= 3, kills
    assert _same(_weights(out), reference)


def test_local_block_training_resumes_in_the_fine_tune(tmp_path, monkeypatch) -> None:
    """All-at-once mode: crash after the joint pass and one fine-tune pass."""
    args = [*ARGS, "--block-training", "local"]
    assert run([*args, "--out", str(tmp_path / "whole")]) == 0
    out = tmp_path / "run"
    _crash_before_pointer_swap(monkeypatch, args, out, 3)
    state = CheckpointStore(out / "checkpoint").latest()
    assert state["phase"] == "finetune" and state["finetune"]["batch"] == 4
    assert run([*args, "--out", str(out), "--resume"]) == 0
    assert _same(_weights(out), _weights(tmp_path / "whole"))


def test_a_damaged_checkpoint_is_named_with_the_fix(tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "run"
    _crash_before_pointer_swap(monkeypatch, ARGS, out, 3)
    weights = out / "checkpoint" / "ckpt-000002" / "student.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    capsys.readouterr()
    assert run([*ARGS, "--out", str(out), "--resume"]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("recast: error: ") and "damaged" in last and "--force" in last


def test_force_refuses_a_folder_without_a_run(tmp_path, capsys) -> None:
    out = tmp_path / "project"
    out.mkdir()
    (out / "config.json").write_text("{\"mine\": true}")
    assert run([*ARGS, "--out", str(out), "--force"]) == 2
    assert "does not hold a recast run" in capsys.readouterr().err
    assert (out / "config.json").read_text() == "{\"mine\": true}"


def test_force_keeps_the_teacher_it_is_given(tmp_path, reference) -> None:
    out = tmp_path / "run"
    assert run([*ARGS, "--out", str(out)]) == 0
    teacher = out / "teacher.safetensors"
    before = teacher.read_bytes()
    assert run([*ARGS, "--out", str(out), "--force", "--teacher", str(teacher)]) == 0
    assert teacher.read_bytes() == before and (out / "report.json").is_file()


def test_a_run_stopped_while_training_its_teacher_resumes_that_training(
        tmp_path, monkeypatch, capsys) -> None:
    """The teacher's training checkpoints after each pass: a resume continues it (not
    from scratch) and the run ends with the student of an unstopped run."""
    assert ARGS[3:5] == ["--teacher-epochs", "1"]
    args = [*ARGS[:4], "3", *ARGS[5:]]  # three teacher passes: two checkpoints
    assert run([*args, "--out", str(tmp_path / "whole")]) == 0
    out = tmp_path / "run"
    save = CheckpointStore.save

    def save_then_stop(self, *a, **kw):
        save(self, *a, **kw)
        raise Stopped("SIGTERM")

    with monkeypatch.context() as patch:
        patch.setattr(CheckpointStore, "save", save_then_stop)
        assert run([*args, "--out", str(out)]) == 143
    assert f"recast --resume {out}" in capsys.readouterr().err
    assert CheckpointStore(out / "teacher-checkpoint").latest()["position"]["batch"] == 4
    resumed: list[str] = []
    monkeypatch.setattr("recast.progress.Progress.log",
                        lambda self, line: resumed.append(line))
    assert run([*args, "--out", str(out), "--resume"]) == 0
    assert any("resuming its training after 256 images" in line for line in resumed)
    assert _same(_weights(out), _weights(tmp_path / "whole"))
    assert not (out / "teacher-checkpoint").exists()
