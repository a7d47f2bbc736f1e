"""What a careless user can do to a run (issue "Nothing lost, nothing silent").

Data-loss cases prove nothing outside the named folder changed; silent and
traceback cases give exit code 2 and one line naming the problem and the fix,
before any training and before any folder is created.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from recast.cli import run
from tests.conftest import cli_error

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT.parent / "shared" / "data" / "cifar10-small"
RUN = ["vgg11", "--teacher-width", "0.125", "--target", "conv", "--width", "0.5",
       "--data-dir", str(SMALL), "--limit-train", "256", "--limit-test", "64", "--quiet"]
# slow enough to be stopped mid-way: teacher 1 epoch, 8 steps, 4 fine-tune passes
SLOW = [*RUN, "--teacher-epochs", "1", "--epochs-per-block", "1", "--finetune-epochs", "4",
        "--batch-size", "64", "--seed", "0"]


def _error(capsys, argv: list[str]) -> str:
    return cli_error(capsys, argv)


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its checksum."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _start(argv: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "recast", *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    """A run stopped by SIGTERM after its first recast step's checkpoint."""
    base = tmp_path_factory.mktemp("stopped")
    out = base / "run"
    process = _start([*SLOW, "--out", str(out)], base)
    _wait_for(out / "checkpoint" / "latest.json", process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-2000:]
    assert f"recast: stopped by SIGTERM; continue it with: recast --resume {out}" in err
    return out


def test_a_moved_run_resumes_where_it_is_and_writes_nowhere_else(stopped_run,
                                                                 tmp_path) -> None:
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(stopped_run, moved)
    original = _tree(stopped_run)
    assert run(["--resume", str(moved), "--quiet"]) == 0
    assert (moved / "student.safetensors").is_file() and (moved / "report.json").is_file()
    assert _tree(stopped_run) == original  # the folder it was copied from is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere"]


def test_resume_with_another_setting_is_refused_naming_it(stopped_run, capsys) -> None:
    before = _tree(stopped_run)
    err = _error(capsys, ["--resume", str(stopped_run), "--width", "0.25"])
    assert "--width 0.25 (the run has 0.5)" in err
    err = _error(capsys, ["resnet20", "--resume", str(stopped_run)])
    assert "--model resnet20 (the run has vgg11)" in err
    assert _tree(stopped_run) == before


def test_resume_accepts_the_settings_the_run_already_has(stopped_run, tmp_path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(stopped_run, copy)
    assert run([*RUN, "--out", str(copy), "--resume"]) == 0


@pytest.mark.parametrize("flag, value", [
    ("--epochs-per-block", "-1"), ("--limit-train", "0"), ("--limit-train", "-3"),
    ("--batch-size", "0"), ("--batch-size", "-5"), ("--lr", "-1"), ("--lr", "nan"),
    ("--finetune-epochs", "-2"), ("--device", "tpu"), ("--kd-alpha", "2"),
])
def test_a_bad_number_is_one_line_before_any_folder(capsys, tmp_path, flag, value) -> None:
    out = tmp_path / "run"
    err = _error(capsys, [*RUN, f"{flag}={value}", "--out", str(out)])
    assert flag in err and not out.exists()


def test_train_refuses_negative_epochs(capsys, tmp_path) -> None:
    out = tmp_path / "t.safetensors"
    err = _error(capsys, ["train", "vgg11", "--data-dir", str(SMALL), "--epochs=-2",
                          "--out", str(out)])
    assert "--epochs" in err and not out.exists()


def test_report_needs_a_width(capsys) -> None:
    err = _error(capsys, ["report", "vgg16", "--dataset", "cifar10", "--target", "conv"])
    assert "--width" in err


def test_labels_of_255_in_ten_classes_are_refused(capsys, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    labels = np.arange(20) % 10
    labels[3] = 255
    for name in ("train", "test"):
        np.savez(data / f"{name}.npz", x=np.zeros((20, 32, 32, 3), np.uint8), y=labels)
    err = _error(capsys, [*RUN[:7], "--data-dir", str(data), "--out", str(tmp_path / "run")])
    assert "255" in err and not (tmp_path / "run").exists()


def test_a_model_file_alone_means_a_recast(tmp_path, capsys) -> None:
    builder = tmp_path / "net.py"
    builder.write_text("from recast.models import build_model\n"
                       "def build(num_classes):\n"
                       "    return build_model('vgg11', num_classes=num_classes, width=0.125)\n")
    err = _error(capsys, ["--model-file", f"{builder}:build", "--target", "conv",
                          "--width", "7", "--data-dir", str(SMALL)])
    assert "outside (0, 1]" in err  # parsed as `recast run`, then refused on its width


def test_run_help_shows_the_presets_defaults(capsys) -> None:
    with pytest.raises(SystemExit):
        run(["run", "--help"])
    text = capsys.readouterr().out
    assert "fast: auto" in text and "the default" in text


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    assert run([*RUN, "--preset", "smoke", "--teacher-epochs", "0.5", "--out", str(out)]) == 0
    return out


def test_eval_uses_the_data_the_run_recorded(finished_run, capsys) -> None:
    reported = json.loads((finished_run / "report.json").read_text())["student"]["accuracy"]
    capsys.readouterr()
    assert run(["eval", str(finished_run)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == reported and result["test_images"] == 64


def test_eval_refuses_a_student_of_another_class_count(finished_run, capsys, tmp_path) -> None:
    data = tmp_path / "two"
    data.mkdir()
    for name in ("train", "test"):
        np.savez(data / f"{name}.npz", x=np.zeros((4, 32, 32, 3), np.uint8),
                 y=np.arange(4) % 2)
    err = _error(capsys, ["eval", str(finished_run), "--data-dir", str(data)])
    assert "10 classes" in err and "2" in err


@pytest.mark.parametrize("damage", ["drop a field", "edit channels"])
def test_eval_of_an_edited_student_json_is_one_line(finished_run, capsys, tmp_path,
                                                    damage) -> None:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    arch = json.loads((copy / "student.json").read_text())
    block = next(e for e in arch["blocks"] if "block" in e)["block"]
    if damage == "drop a field":
        del block["out_channels"]
    else:
        block["out_channels"] += 3
    (copy / "student.json").write_text(json.dumps(arch))
    err = _error(capsys, ["eval", str(copy)])
    assert "student" in err and "restore" in err


def test_log_and_report_are_honest(finished_run) -> None:
    report_md = (finished_run / "report.md").read_text()
    assert ".0 images" not in report_md
    label = json.loads((finished_run / "report.json").read_text())["finetune_loss"]
    assert label in report_md


def test_the_log_shows_the_rate_each_phase_used(capsys, tmp_path) -> None:
    assert run([*RUN, "--preset", "smoke", "--teacher-epochs", "0.5",
                "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    fine_tune = [line for line in err.splitlines() if line.startswith("fine-tune:") and "->" in line]
    assert fine_tune and "lr 1.00e-03 ->" in fine_tune[-1]


def test_the_demo_sample_is_a_note_not_a_warning(capsys, tmp_path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a raw UserWarning fails here
        assert run(["train", "vgg11", "--teacher-width", "0.125", "--epochs", "0.02",
                    "--limit-test", "64", "--quiet", "--out", str(tmp_path / "t.safetensors")]) == 0
    assert "recast: note: no --dataset or --data-dir given" in capsys.readouterr().err


def test_ctrl_c_says_how_to_continue(monkeypatch, capsys, tmp_path) -> None:
    from recast import jobs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "_run_in", interrupted)
    out = tmp_path / "run"
    assert run([*RUN, "--preset", "smoke", "--out", str(out)]) == 130
    assert f"stopped by SIGINT; continue it with: recast --resume {out}" in capsys.readouterr().err
