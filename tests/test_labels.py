"""Runs without labels (issue "Beyond labels"): `--labels none`, or data without y.

The proof that no label is read: the same recast on training labels shuffled
gives the same student bit for bit, and so does one on data with no y at all,
from one fixed teacher file.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recast.cli import run
from tests.conftest import SMALL, cli_error

LIMITS = ["--limit-train", "256", "--limit-test", "200"]
RECAST = ["vgg11", "--teacher-width", "0.125", "--target", "conv", "--width", "0.4",
          "--preset", "smoke", "--quiet", *LIMITS]


def _copy(folder: Path, train_y: str = "keep", test_y: str = "keep") -> Path:
    """The small sample's first 256/200 images; y kept, permuted ("shuffle") or left out."""
    folder.mkdir()
    for split, n, how in (("train", 256, train_y), ("test", 200, test_y)):
        with np.load(SMALL / f"cifar10_{split}_{'2k' if split == 'train' else '1k'}.npz") as f:
            x, y = f["x"][:n], f["y"][:n]
        arrays = {"x": x}
        if how != "drop":
            arrays["y"] = np.random.default_rng(1).permutation(y) if how == "shuffle" else y
        np.savez(folder / f"{split}.npz", **arrays)
    return folder


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    if not SMALL.is_dir():
        pytest.skip(f"{SMALL} is missing")
    return tmp_path_factory.mktemp("labels")


@pytest.fixture(scope="module")
def teacher(base) -> Path:
    """One fixed teacher file for every run here (a fifth of an epoch of training)."""
    path = base / "teacher.safetensors"
    assert run(["train", "vgg11", "--teacher-width", "0.125", "--data-dir", str(SMALL),
                "--epochs", "0.2", "--quiet", *LIMITS, "--out", str(path)]) == 0
    return path


def _recast(data: Path, teacher: Path, out: Path, *extra: str) -> Path:
    assert run([*RECAST, "--data-dir", str(data), "--teacher", str(teacher),
                "--out", str(out), *extra]) == 0
    return out


@pytest.fixture(scope="module")
def labelled_run(base, teacher) -> Path:
    return _recast(_copy(base / "data"), teacher, base / "run", "--labels", "none")


def test_labels_none_runs_and_reports_test_accuracy(labelled_run) -> None:
    report = json.loads((labelled_run / "report.json").read_text())
    assert report["labels"] == "none" and "accuracy_is" not in report
    assert isinstance(report["student"]["accuracy"], float)
    assert report["finetune_loss"].startswith("Hinton KD on the teacher's soft targets only")
    assert "Labels: none" in (labelled_run / "report.md").read_text()


def test_no_label_is_read_shuffled_labels_give_the_same_student(base, teacher,
                                                                labelled_run) -> None:
    shuffled = _recast(_copy(base / "shuffled", train_y="shuffle"), teacher,
                       base / "run-shuffled", "--labels", "none")
    assert (shuffled / "student.safetensors").read_bytes() == \
        (labelled_run / "student.safetensors").read_bytes()


def test_data_without_y_runs_with_a_teacher_as_labels_none(base, teacher, labelled_run,
                                                           capsys) -> None:
    """No y anywhere: --labels none by itself, accuracy is agreement with the teacher."""
    out = _recast(_copy(base / "no-y", train_y="drop", test_y="drop"), teacher,
                  base / "run-no-y")
    err = capsys.readouterr().err
    assert "has no training labels, so the run reads none" in err
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == "none" and "agreement with the teacher" in report["accuracy_is"]
    assert report["teacher"]["accuracy"] == 100.0 and report["num_classes"] == 10
    assert "agreement with the teacher" in (out / "report.md").read_text()
    assert (out / "student.safetensors").read_bytes() == \
        (labelled_run / "student.safetensors").read_bytes()
    err = cli_error(capsys, ["eval", str(out)])
    assert "no test labels" in err and "--data-dir" in err


def test_data_without_y_and_without_a_teacher_is_refused(base, capsys) -> None:
    data = _copy(base / "no-y-only", train_y="drop")
    out = base / "refused"
    err = cli_error(capsys, [*RECAST, "--data-dir", str(data), "--out", str(out)])
    assert "no training labels" in err and "--teacher FILE" in err and not out.exists()
    err = cli_error(capsys, ["train", "vgg11", "--data-dir", str(data), "--out",
                             str(base / "t.safetensors")])
    assert "no training labels" in err and "--teacher FILE" in err


@pytest.mark.parametrize("loss", [["--finetune-loss", "ce"], ["--finetune-loss", "mse-ce"],
                                  ["--finetune-loss", "kd"],
                                  ["--finetune-loss", "kd", "--kd-alpha", "0.5"]])
def test_a_label_reading_fine_tune_loss_is_one_line(capsys, tmp_path, loss) -> None:
    out = tmp_path / "run"
    err = cli_error(capsys, [*RECAST, "--data-dir", str(SMALL), "--labels", "none",
                             "--teacher", "t.safetensors", *loss, "--out", str(out)])
    assert f"--finetune-loss {loss[1]}" in err and "reads labels" in err
    assert "--finetune-loss kd-soft or mse" in err and not out.exists()


@pytest.mark.parametrize("extra, words", [
    ([], ["--labels none", "--teacher FILE"]),
    (["--teacher", "t.safetensors", "--method", "scratch"], ["--method scratch", "--method kd"]),
    (["--teacher", "t.safetensors", "--method", "kd-mse"], ["--method kd-mse", "--method kd"]),
    (["--teacher", "t.safetensors", "--method", "hint"], ["--method hint", "--method kd"]),
])
def test_what_needs_labels_is_refused_with_labels_none(capsys, tmp_path, extra, words) -> None:
    out = tmp_path / "run"
    err = cli_error(capsys, [*RECAST, "--data-dir", str(SMALL), "--labels", "none", *extra,
                             "--out", str(out)])
    assert all(w in err for w in words), err
    assert not out.exists()


def test_kd_baseline_with_labels_none_runs(base, teacher, capsys) -> None:
    out = _recast(SMALL, teacher, base / "kd", "--labels", "none", "--method", "kd")
    assert "--method kd learns the teacher's outputs only (alpha 1)" in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert (report["labels"], report["method"]) == ("none", "kd")


def test_test_labels_beyond_the_teachers_classes_are_refused(base, teacher, capsys) -> None:
    data = _copy(base / "beyond", train_y="drop")
    with np.load(data / "test.npz") as f:
        x, y = f["x"], f["y"]
    np.savez(data / "test.npz", x=x, y=y + 5)
    err = cli_error(capsys, [*RECAST, "--data-dir", str(data), "--teacher", str(teacher),
                             "--out", str(base / "beyond-run")])
    assert "test labels reach 14 but the teacher has 10 classes" in err
    assert not (base / "beyond-run").exists()


def test_labels_given_on_data_without_labels_is_refused(base, teacher, capsys) -> None:
    data = _copy(base / "given", train_y="drop")
    err = cli_error(capsys, [*RECAST, "--data-dir", str(data), "--teacher", str(teacher),
                             "--labels", "given", "--out", str(base / "given-run")])
    assert "--labels given" in err and "no training labels" in err


def test_kd_baseline_without_labels_is_alpha_one_and_reads_none() -> None:
    """Labels of -1 (what a set without labels holds) fail any CE that reads them."""
    from recast.baselines import train_student
    from recast.datasets import BatchLoader, ImageSet
    from recast.progress import Progress

    images = ImageSet.of(torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8), None)
    loader = BatchLoader(images, (0.5,) * 3, (0.25,) * 3, 8)

    def net() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 4))

    result = train_student("kd", net(), net(), loader, loader, 1, torch.device("cpu"),
                           Progress(quiet=True), labels=False)
    assert result["images"] == 16
    with pytest.raises(IndexError, match="out of bounds"):  # read, a label of -1 fails CE
        train_student("kd", net(), net(), loader, loader, 1, torch.device("cpu"),
                      Progress(quiet=True))


def test_labels_none_puts_the_fine_tune_on_the_teachers_outputs() -> None:
    from recast.errors import RecastError
    from recast.presets import make_config

    fast = make_config("fast", {"labels": "none"})
    assert (fast.finetune_loss, fast.finetune_optimizer, fast.finetune_lr) == ("kd-soft", "sgd",
                                                                               0.02)
    assert make_config("fast", {"labels": "none", "finetune_loss": "mse"}).finetune_loss == "mse"
    assert make_config("smoke", {"labels": "none", "finetune_loss": "kd",
                                 "kd_alpha": 1.0}).finetune_loss == "kd"
    assert make_config("fast", {}).finetune_loss == "auto"  # labelled runs: the preset's
    with pytest.raises(RecastError, match="or --kd-alpha 1"):
        make_config("smoke", {"labels": "none", "finetune_loss": "kd"})
