"""`recast MODEL ...` writes a complete run folder that `recast eval` agrees with."""

import json

import pytest
import torch

from recast.cli import run
from recast.precision import has_fast_bfloat16
from recast.result import cpu_model
from tests.conftest import SMALL

PICTURES = ("plots", "tensorboard")  # only with the optional extras installed


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vgg"
    code = run(["vgg11", "--teacher-width", "0.25", "--target", "conv", "--width", "0.5",
                "--data-dir", str(SMALL), "--dataset", "cifar10", "--preset", "smoke",
                "--teacher-epochs", "1", "--limit-train", "1000", "--quiet",
                "--out", str(out)])
    assert code == 0
    return out


def test_run_folder_holds_student_report_config_and_teacher(run_dir) -> None:
    names = sorted(p.name for p in run_dir.iterdir() if p.name not in PICTURES)
    assert names == ["config.json", "report.json", "report.md", "run-args.json",
                     "student.json", "student.safetensors", "teacher.safetensors"]


def test_report_has_accuracy_costs_latency_and_steps(run_dir) -> None:
    report = json.loads((run_dir / "report.json").read_text())
    for side in ("teacher", "student"):
        assert {"accuracy", "params", "mults", "macs", "latency_ms"} <= set(report[side])
    assert report["data"]["train"] == 1000
    steps = [b["step"] for b in report["blocks"] if "step" in b]
    assert len(steps) == 8 and all("seconds" in s and "final_mse" in s for s in steps)
    assert "accuracy (%)" in (run_dir / "report.md").read_text()


def test_config_records_seed_versions_and_settings(run_dir) -> None:
    config = json.loads((run_dir / "config.json").read_text())
    assert config["recast"]["seed"] == 0 and config["preset"] == "smoke"
    assert config["environment"]["torch"] and "commit" in config["environment"]
    assert config["teacher"]["source"] == "trained"


def test_config_names_the_cpu_and_its_bfloat16_units(run_dir) -> None:
    # wall times from different CPUs, or with and without bfloat16 units, differ
    machine = json.loads((run_dir / "config.json").read_text())["environment"]["machine"]
    assert cpu_model() in machine and cpu_model() != ""
    assert machine.endswith("bfloat16 units")
    assert ("no bfloat16" in machine) != has_fast_bfloat16(torch.device("cpu"))


def test_eval_reproduces_the_reported_accuracy(run_dir, capsys) -> None:
    reported = json.loads((run_dir / "report.json").read_text())["student"]["accuracy"]
    capsys.readouterr()
    assert run(["eval", str(run_dir), "--data-dir", str(SMALL)]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == reported


def test_second_run_into_the_same_folder_is_refused(run_dir, capsys) -> None:
    before = (run_dir / "student.safetensors").read_bytes()
    assert run(["vgg11", "--target", "conv", "--data-dir", str(SMALL), "--out",
                str(run_dir)]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert (run_dir / "student.safetensors").read_bytes() == before


def test_run_with_a_saved_teacher_skips_training(run_dir, tmp_path, capsys) -> None:
    code = run(["vgg11", "--teacher-width", "0.25", "--target", "conv", "--width", "0.5",
                "--data-dir", str(SMALL), "--teacher", str(run_dir / "teacher.safetensors"),
                "--preset", "smoke", "--limit-train", "200", "--limit-test", "200",
                "--quiet", "--out", str(tmp_path / "again")])
    assert code == 0
    assert "training" not in capsys.readouterr().err.split("teacher accuracy")[0]


def test_train_command_saves_a_loadable_teacher(tmp_path, capsys) -> None:
    out = tmp_path / "t.safetensors"
    assert run(["train", "vgg11", "--teacher-width", "0.25", "--data-dir", str(SMALL),
                "--epochs", "0.2", "--limit-train", "500", "--quiet", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] >= 0
    assert out.is_file()


@pytest.mark.parametrize("method", ["kd", "kd-mse", "scratch"])
def test_baseline_method_trains_the_same_student_for_the_same_images(
        method, run_dir, tmp_path) -> None:
    out = tmp_path / method
    assert run(["vgg11", "--teacher-width", "0.25", "--target", "conv", "--width", "0.5",
                "--data-dir", str(SMALL), "--teacher", str(run_dir / "teacher.safetensors"),
                "--method", method, "--budget", "0.5", "--limit-test", "200", "--quiet",
                "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    recast_report = json.loads((run_dir / "report.json").read_text())
    assert report["student"]["params"] == recast_report["student"]["params"]
    assert abs(report["images_seen"] - 1000) < 128 and report["method"] == method
    text = (out / "report.md").read_text()  # says what made the student, and no steps
    assert text.startswith(f"# --method {method} report:") and "Recast steps" not in text


def test_the_hint_baseline_on_narrower_blocks_is_one_line(run_dir, tmp_path, capsys) -> None:
    # a compression plan: no student block outputs the shape of its teacher block
    out = tmp_path / "hint"
    assert run(["vgg11", "--teacher-width", "0.25", "--target", "conv", "--width", "0.5",
                "--data-dir", str(SMALL), "--teacher", str(run_dir / "teacher.safetensors"),
                "--method", "hint", "--budget", "0.1", "--limit-test", "200", "--quiet",
                "--out", str(out)]) == 2
    assert "--method hint): no block of the student" in capsys.readouterr().err
    assert not out.exists()  # refused with the plan, before a run folder or a batch


def test_pictures_when_the_extras_are_installed(run_dir) -> None:
    pytest.importorskip("matplotlib")
    report = json.loads((run_dir / "report.json").read_text())
    assert report["plots"] == ["plots/steps.png", "plots/accuracy_vs_mults.png"]
    assert all((run_dir / p).read_bytes()[:4] == b"\x89PNG" for p in report["plots"])
    assert "![steps](plots/steps.png)" in (run_dir / "report.md").read_text()


def _scalars(folder) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_holds_live_curves_and_the_step_summary(run_dir) -> None:
    pytest.importorskip("tensorboard")
    live = _scalars(run_dir / "tensorboard" / "live")
    assert {"teacher/loss", "recast/loss", "fine-tune/lr", "test/accuracy_vs_images"} <= set(live)
    assert all(0 <= a <= 100 for a in live["test/accuracy_vs_images"])
    summary = _scalars(run_dir / "tensorboard" / "summary")
    assert len(summary["step/final_mse"]) == 8
    assert "live*" in (run_dir / "report.md").read_text()


def test_live_events_reach_the_disk_when_a_phase_ends(tmp_path) -> None:
    """Watchable during the run: each finished phase is flushed, not only the end."""
    pytest.importorskip("tensorboard")
    from recast.progress import EVENT_EVERY, Progress

    progress = Progress(quiet=True)
    folder = progress.watch(tmp_path)
    bar = progress.bar(2 * EVENT_EVERY + 5, "fine-tune")
    for _ in range(2 * EVENT_EVERY + 5):
        bar.update(loss=1.0, lr=0.1, rate=100.0, pass_ended=0)
    bar.close()
    # every EVENT_EVERY batches, and the phase's last batch; on disk before close()
    assert len(_scalars(folder)["fine-tune/loss"]) == 3
    progress.close()
    again = Progress(quiet=True)
    assert again.watch(tmp_path).name == "live-2"  # a resume adds a run
    again.close()


def test_without_tensorboard_progress_still_works(tmp_path, monkeypatch) -> None:
    import sys

    from recast.progress import Progress

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    progress = Progress(quiet=True)
    assert progress.watch(tmp_path) is None and not any(tmp_path.iterdir())
    bar = progress.bar(2, "fine-tune")
    bar.update(loss=1.0, lr=0.1, rate=100.0, pass_ended=1)
    bar.close()
    progress.close()


def test_a_resume_keeps_the_settings_the_run_started_with(run_dir, monkeypatch) -> None:
    """A preset changed between the crash and --resume must not change the run."""
    from recast import presets
    from recast.runspec import RunSpec

    saved = json.loads((run_dir / "run-args.json").read_text())
    monkeypatch.setitem(presets.PRESETS, "smoke", {"lr": 0.5})
    spec = RunSpec.from_json(saved)
    recorded = json.loads((run_dir / "config.json").read_text())["recast"]
    # config.json holds the settings as run: the unset warm-up settled (no step of
    # this run is solved in closed form)
    assert spec.config.split(8).settle_finetune(solved=False).to_json() == recorded
