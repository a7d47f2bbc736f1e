"""--data synthetic: a recast from a teacher file alone (recast/datafree.py)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from recast.cli import run
from tests.conftest import SMALL, cli_error

RUN = ["vgg11", "--teacher-width", "0.125", "--target", "conv", "--width", "0.4",
       "--preset", "smoke", "--data", "synthetic", "--synthetic-images", "128",
       "--synthetic-steps", "4", "--limit-test", "128", "--quiet"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("teacher") / "t.safetensors"
    assert run(["train", "vgg11", "--teacher-width", "0.125", "--data-dir", str(SMALL),
                "--epochs", "0.5", "--limit-train", "512", "--quiet", "--out", str(path)]) == 0
    return path


def _data_with_other_training_images(tmp_path: Path) -> Path:
    folder = tmp_path / "other"
    folder.mkdir()
    shutil.copy(SMALL / "cifar10_test_1k.npz", folder / "test.npz")
    noise = np.random.default_rng(1).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    np.savez(folder / "train.npz", x=noise, y=np.arange(64) % 10)
    return folder


def test_a_data_free_recast_saves_its_set_and_reads_no_training_image(teacher, tmp_path,
                                                                       monkeypatch) -> None:
    import recast.teacher

    reads: list[str] = []
    monkeypatch.setattr(recast.teacher, "load_file",
                        lambda path: reads.append(path) or load_file(path))
    first, second = tmp_path / "a", tmp_path / "b"
    assert run([*RUN, "--teacher", str(teacher), "--data-dir", str(SMALL),
                "--out", str(first)]) == 0
    other = _data_with_other_training_images(tmp_path)
    assert run([*RUN, "--teacher", str(teacher), "--data-dir", str(other),
                "--out", str(second)]) == 0
    assert reads == [str(teacher)] * 2  # each run reads the teacher file once
    assert np.load(first / "synthetic.npz")["x"].shape == (128, 32, 32, 3)
    report = json.loads((first / "report.json").read_text())
    assert report["labels"] == "none" and report["student"]["accuracy"] >= 0
    assert report["synthetic"]["images"] == 128 and report["synthetic"]["seconds"] >= 0
    assert set(report["synthetic"]["bn_statistics_gap"]) == {"synthetic", "test images"}
    a, b = load_file(str(first / "student.safetensors")), load_file(str(second / "student.safetensors"))
    assert all((a[k] == b[k]).all() for k in a)  # the given training images changed nothing


def test_data_free_without_a_teacher_is_one_line(capsys, tmp_path) -> None:
    err = cli_error(capsys, [*RUN, "--data-dir", str(SMALL), "--out", str(tmp_path / "r")])
    assert "needs the teacher to synthesise from" in err and not (tmp_path / "r").exists()


def test_synthetic_sizes_without_synthetic_data_are_refused(capsys, tmp_path) -> None:
    argv = [a for a in RUN if a not in ("--data", "synthetic")]
    err = cli_error(capsys, [*argv, "--data-dir", str(SMALL), "--out", str(tmp_path / "r")])
    assert "--data synthetic" in err


@pytest.mark.parametrize("flags, names", [
    (["--method", "kd-mse"], "--method kd-mse"),  # refused for its labels
    # refused by the plan: every basic block would outgrow the conv it replaces
    (["--target", "basic", "--width", "1.0"], "--allow-bigger"),
    (["--labels", "given"], "drop --data synthetic"),
])
def test_a_data_free_run_is_refused_before_it_synthesises(teacher, tmp_path, capsys,
                                                          monkeypatch, flags, names) -> None:
    import recast.datafree

    def never(*args, **kwargs):
        raise AssertionError("synthesised before the refusal")

    monkeypatch.setattr(recast.datafree, "synthesize", never)
    err = cli_error(capsys, [*RUN, *flags, "--teacher", str(teacher), "--data-dir", str(SMALL),
                             "--out", str(tmp_path / "r")])
    assert names in err and not (tmp_path / "r").exists()
