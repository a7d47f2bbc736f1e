"""Every user mistake: exit code 2, one line naming the problem and the fix, nothing lost."""

from pathlib import Path

import numpy as np
import pytest
import torch

from recast.cli import run
from tests.conftest import cli_error
from recast.files import atomic_save_weights
from recast.models import build_model

SMALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-small"
RUN = ["vgg11", "--teacher-width", "0.125", "--target", "conv", "--preset", "smoke",
       "--limit-train", "128", "--limit-test", "64", "--quiet"]


def _error(capsys, argv: list[str]) -> str:
    return cli_error(capsys, argv)


def _npz(folder: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train", "test"):
        np.savez(folder / f"{name}.npz", x=images, y=labels)
    return folder


@pytest.mark.parametrize("width", ["0", "1.5", "-1"])
def test_bad_width_fails_before_any_training_or_folder(capsys, tmp_path, width) -> None:
    out = tmp_path / "run"
    err = _error(capsys, [*RUN, "--data-dir", str(SMALL), f"--width={width}", "--out", str(out)])
    assert "outside (0, 1]" in err and "--width" in err
    assert not out.exists()


def test_unknown_target_fails_before_training(capsys, tmp_path) -> None:
    out = tmp_path / "run"
    err = _error(capsys, [*RUN[:3], "--target", "tower", *RUN[5:], "--data-dir", str(SMALL),
                          "--out", str(out)])
    assert "tower" in err and "conv, basic" in err and not out.exists()


def test_out_that_is_a_file_is_refused_and_kept(capsys, tmp_path) -> None:
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    err = _error(capsys, [*RUN, "--data-dir", str(SMALL), "--out", str(out)])
    assert "is a file" in err and out.read_text() == "mine"


def test_train_checks_its_output_path_before_training(capsys, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    err = _error(capsys, ["train", "vgg11", "--teacher-width", "0.125", "--data-dir",
                          str(SMALL), "--limit-train", "64", "--epochs", "100",
                          "--out", str(blocker / "t.safetensors")])
    assert "cannot be written" in err and blocker.read_text() == "mine"


def _teacher_error(capsys, tmp_path, data, num_classes: int) -> str:
    """The error of a run whose saved teacher (3-channel VGG-11) meets ``data``."""
    path = tmp_path / "teacher.safetensors"
    atomic_save_weights(build_model("vgg11", width=0.125, num_classes=num_classes), path)
    return _error(capsys, [*RUN, "--data-dir", str(data), "--teacher", str(path),
                           "--out", str(tmp_path / "run")])


def test_teacher_for_other_classes_says_so(capsys, tmp_path) -> None:
    err = _teacher_error(capsys, tmp_path, SMALL, num_classes=100)
    assert "100 classes, the data 10" in err


def test_teacher_for_other_channels_says_so(capsys, tmp_path) -> None:
    data = _npz(tmp_path / "gray", np.zeros((8, 32, 32, 1), np.uint8), np.arange(8) % 2)
    err = _teacher_error(capsys, tmp_path, data, num_classes=2)
    assert "3-channel images, the data has 1" in err


def test_negative_labels_are_named(capsys, tmp_path) -> None:
    data = _npz(tmp_path / "bad", np.zeros((8, 32, 32, 3), np.uint8), np.arange(8) - 1)
    err = _error(capsys, [*RUN, "--data-dir", str(data), "--out", str(tmp_path / "run")])
    assert "found -1" in err


def test_empty_test_set_is_named(capsys, tmp_path) -> None:
    data = tmp_path / "empty"
    data.mkdir()
    np.savez(data / "train.npz", x=np.zeros((4, 32, 32, 3), np.uint8), y=np.arange(4))
    np.savez(data / "test.npz", x=np.zeros((0, 32, 32, 3), np.uint8), y=np.zeros(0, np.int64))
    err = _error(capsys, [*RUN, "--data-dir", str(data), "--out", str(tmp_path / "run")])
    assert "test set has 0 images" in err


def test_image_folder_without_class_folders(capsys, tmp_path) -> None:
    for name in ("train", "test"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
    err = _error(capsys, [*RUN, "--data-dir", str(tmp_path / "imgs"),
                          "--out", str(tmp_path / "run")])
    assert "no class folders" in err


def test_pickle_teacher_message_says_how_to_resave(capsys, tmp_path) -> None:
    class Payload:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "PWNED",))

    path = tmp_path / "evil.pt"
    torch.save({"weight": Payload()}, path)
    err = _error(capsys, [*RUN, "--data-dir", str(SMALL), "--teacher", str(path),
                          "--out", str(tmp_path / "run")])
    assert "refused unread" in err and "state_dict()" in err
    assert not (tmp_path / "PWNED").exists()


def test_debug_shows_the_traceback(tmp_path) -> None:
    with pytest.raises(Exception):
        run(["--debug", *RUN, "--data-dir", str(SMALL), "--width=2",
             "--out", str(tmp_path / "run")])


def test_input_too_small_for_the_model_is_one_line(capsys) -> None:
    err = _error(capsys, ["report", "densenet_bc_100_12", "--input-size", "2", "--target",
                          "conv", "--width", "0.5", "--no-latency"])
    assert "--input-size" in err
