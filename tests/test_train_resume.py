"""`recast train --resume`: a teacher training stopped after a pass continues from its
checkpoint and ends with the very weights of an unstopped training."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from recast.checkpoint import CheckpointStore
from recast.cli import run
from recast.errors import Stopped
from tests.conftest import SMALL, cli_error

# three passes of four batches each
TRAIN = ["train", "vgg11", "--teacher-width", "0.125", "--data-dir", str(SMALL),
         "--limit-train", "256", "--limit-test", "64", "--epochs", "3", "--batch-size", "64",
         "--quiet", "--seed", "0"]


def _stop_after_first_checkpoint(monkeypatch) -> None:
    save = CheckpointStore.save

    def save_then_stop(self, *args, **kwargs):
        save(self, *args, **kwargs)
        raise Stopped("SIGTERM")

    monkeypatch.setattr(CheckpointStore, "save", save_then_stop)


def test_a_stopped_teacher_training_resumes_to_the_same_weights(tmp_path, capsys,
                                                                 monkeypatch) -> None:
    whole, resumed = tmp_path / "whole.safetensors", tmp_path / "resumed.safetensors"
    assert run([*TRAIN, "--out", str(whole)]) == 0
    with monkeypatch.context() as patch:
        _stop_after_first_checkpoint(patch)
        assert run([*TRAIN, "--out", str(resumed)]) == 143
    assert "same command and --resume" in capsys.readouterr().err
    assert not resumed.exists() and (tmp_path / "resumed.safetensors.checkpoint").is_dir()
    assert run([*TRAIN, "--out", str(resumed), "--resume"]) == 0
    a, b = load_file(str(whole)), load_file(str(resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "resumed.safetensors.checkpoint").exists()  # gone once saved


@pytest.mark.parametrize("change, names", [
    (["--epochs", "4"], "other epochs (3.0 then, 4.0 now)"),
    (["--lr", "0.01"], "other lr (0.05 then, 0.01 now)"),
    (["--teacher-width", "0.25"], "other model.teacher_width (0.125 then, 0.25 now)"),
])
def test_a_resume_with_other_settings_is_refused(tmp_path, capsys, monkeypatch, change,
                                                names) -> None:
    out = tmp_path / "t.safetensors"
    with monkeypatch.context() as patch:
        _stop_after_first_checkpoint(patch)
        assert run([*TRAIN, "--out", str(out)]) == 143
    capsys.readouterr()
    assert names in cli_error(capsys, [*TRAIN, *change, "--out", str(out), "--resume"])


def test_the_same_data_folder_spelled_another_way_resumes(tmp_path, monkeypatch) -> None:
    # the checkpoint names the folder by its absolute path, not as it was typed
    out = tmp_path / "t.safetensors"
    with monkeypatch.context() as patch:
        _stop_after_first_checkpoint(patch)
        assert run([*TRAIN, "--out", str(out)]) == 143
    monkeypatch.chdir(SMALL.parent)
    relative = [SMALL.name if arg == str(SMALL) else arg for arg in TRAIN]
    assert run([*relative, "--out", str(out), "--resume"]) == 0 and out.is_file()


def test_a_partial_training_is_neither_overwritten_nor_resumed_unasked(tmp_path, capsys,
                                                                      monkeypatch) -> None:
    out = tmp_path / "t.safetensors"
    assert "no checkpoint" in cli_error(capsys, [*TRAIN, "--out", str(out), "--resume"])
    with monkeypatch.context() as patch:
        _stop_after_first_checkpoint(patch)
        assert run([*TRAIN, "--out", str(out)]) == 143
    capsys.readouterr()
    err = cli_error(capsys, [*TRAIN, "--out", str(out)])
    assert "--resume" in err and Path(str(out) + ".checkpoint").is_dir()


def test_a_checkpoint_folder_a_kill_left_empty_blocks_nothing(tmp_path) -> None:
    out = tmp_path / "t.safetensors"
    Path(str(out) + ".checkpoint").mkdir()  # killed before its first checkpoint was whole
    assert run([*TRAIN, "--epochs", "1", "--out", str(out)]) == 0 and out.is_file()
