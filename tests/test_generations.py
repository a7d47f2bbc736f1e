"""Born-again generations: the finished student teaches the next recast of the same
plan (--generations N); every generation's student has the same architecture,
each is kept in generations/G/, and a resumed run reuses the finished ones."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import recast
from recast.cli import run
from recast.datasets import BatchLoader
from recast.errors import RecastError
from recast.generations import next_plan
from recast.models import build_model
from recast.plan import make_plan
from recast.serialize import load_student
from recast.walker import walk
from tests.conftest import SMALL, cli_error

TINY = ["--model-file", f"{__file__}:tiny", "--target", "conv", "--width", "0.5",
        "--data-dir", str(SMALL), "--limit-train", "128", "--limit-test", "64",
        "--epochs-per-block", "0.5", "--finetune-epochs", "0.5", "--batch-size", "64",
        "--quiet", "--seed", "0"]


def tiny(num_classes: int = 10) -> nn.Sequential:
    """Three conv blocks and a head: a recast in seconds."""
    def conv(i: int, o: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    return nn.Sequential(*conv(3, 8), nn.MaxPool2d(2), *conv(8, 16), nn.MaxPool2d(2),
                         *conv(16, 16), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, num_classes))


@pytest.fixture(scope="module", autouse=True)
def _no_latency_timing():
    """Timing forward passes is what takes longest here, and no test reads it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("recast.report.measure_latency_ms", lambda *args, **kwargs: 1.0)
        yield


def _shapes(student: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in student.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# the Python API ---------------------------------------------------------------
@pytest.fixture(scope="module")
def api_runs(small_data, tmp_path_factory):
    """One plain recast, and the same recast with a born-again generation after it."""
    def loaders():
        return (BatchLoader(small_data.train.limit(128), small_data.mean, small_data.std, 64,
                            seed=0),
                BatchLoader(small_data.test.limit(64), small_data.mean, small_data.std, 64,
                            train=False))

    config = recast.RecastConfig(epochs_per_block=0.5, finetune_epochs=0.5, batch_size=64)
    torch.manual_seed(0)
    teacher = tiny().eval()
    train, test = loaders()
    one = recast.recast(teacher, "conv", 0.5, train_loader=train, test_loader=test,
                        config=config, device="cpu")
    kept = tmp_path_factory.mktemp("generations")
    train, test = loaders()
    two = recast.recast(teacher, "conv", 0.5, train_loader=train, test_loader=test,
                        config=config, device="cpu", generations=2, generations_dir=kept)
    return one, two, kept


def test_generation_one_is_the_plain_recast(api_runs) -> None:
    one, _, kept = api_runs
    assert "generations" not in one.report
    assert _same(load_student(kept / "1").state_dict(), one.student.state_dict())


def test_two_generations_report_each_accuracy(api_runs) -> None:
    one, two, kept = api_runs
    rows = two.report["generations"]
    assert [r["generation"] for r in rows] == [1, 2]
    assert all(0 <= r["accuracy"] <= 100 and 0 <= r["teacher_accuracy"] <= 100 for r in rows)
    assert rows[0]["teacher_accuracy"] == one.report["teacher"]["accuracy"]
    assert rows[0]["accuracy"] == one.report["student"]["accuracy"]
    # generation 2's teacher is generation 1's student: its accuracy, measured anew
    assert rows[1]["teacher_accuracy"] == rows[0]["accuracy"]
    assert two.report["teacher"]["accuracy"] == one.report["teacher"]["accuracy"]
    assert two.report["student"]["accuracy"] == rows[1]["accuracy"]
    assert two.report["images_seen"] == sum(r["images_seen"] for r in rows)
    saved = json.loads((kept / "2" / "generation.json").read_text())
    assert saved["accuracy"] == rows[1]["accuracy"]


def test_every_generation_has_the_same_architecture(api_runs) -> None:
    one, two, kept = api_runs
    first, second = load_student(kept / "1"), load_student(kept / "2")
    assert _shapes(first) == _shapes(second) == _shapes(two.student) == _shapes(one.student)
    assert _same(second.state_dict(), two.student.state_dict())
    assert not _same(first.state_dict(), second.state_dict())  # retrained, not copied


@pytest.mark.parametrize("model,width,target", [("vgg11", 0.125, "conv"),
                                                ("resnet20", 0.25, "conv"),
                                                ("resnet20", 0.5, "mbconv")])
def test_the_next_plan_is_the_same_plan_over_the_student(model, width, target) -> None:
    torch.manual_seed(0)
    plan = make_plan(walk(build_model(model, width=width).eval(), (1, 3, 32, 32)), target, 0.5)
    student = plan.build_student().eval()
    again = next_plan(plan, student)
    assert _shapes(again.build_student()) == _shapes(student)
    assert [s.recast for s in again.steps] == [s.recast for s in plan.steps]
    assert [s.spec for s in again.steps if s.recast] == [s.spec for s in plan.steps if s.recast]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # the next generation's teacher computes the student
        assert torch.equal(again.chain.as_module().eval()(x), student(x))


def test_a_generation_count_below_one_is_refused(capsys) -> None:
    err = cli_error(capsys, [*TINY, "--generations", "0", "--out", "unused"])
    assert "--generations 0 must be at least 1" in err
    assert not Path("unused").exists()
    err = cli_error(capsys, [*TINY, "--generations", "2", "--method", "kd"])
    assert "--generations" in err
    with pytest.raises(RecastError, match="at least 1"):
        recast.recast(tiny(), train_loader=None, test_loader=None, generations=0)


# the run folder and --resume --------------------------------------------------
@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory) -> str:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("teacher") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny().state_dict().items()}, str(path))
    return str(path)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, teacher_file) -> Path:
    """An uninterrupted two-generation run."""
    out = tmp_path_factory.mktemp("runs") / "two"
    assert run([*TINY, "--teacher", teacher_file, "--generations", "2", "--out", str(out)]) == 0
    return out


def test_the_run_folder_keeps_every_generation(reference) -> None:
    report = json.loads((reference / "report.json").read_text())
    rows = report["generations"]
    assert [r["generation"] for r in rows] == [1, 2]
    assert rows[1]["teacher_accuracy"] == rows[0]["accuracy"]
    assert report["student"]["accuracy"] == rows[1]["accuracy"]
    assert "## Born-again generations" in (reference / "report.md").read_text()
    final = load_file(str(reference / "student.safetensors"))
    assert _same(final, load_file(str(reference / "generations" / "2" / "student.safetensors")))
    first = load_file(str(reference / "generations" / "1" / "student.safetensors"))
    assert {k: v.shape for k, v in first.items()} == {k: v.shape for k, v in final.items()}
    assert not (reference / "checkpoint").exists()
    assert json.loads((reference / "run-args.json").read_text())["generations"] == 2


def _counting_recasts(monkeypatch) -> list[int]:
    import recast.pipeline

    calls: list[int] = []
    real = recast.pipeline.recast_plan

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(recast.pipeline, "recast_plan", counted)
    return calls


def test_a_run_stopped_between_generations_resumes_with_the_next(tmp_path, monkeypatch,
                                                                  capsys, teacher_file,
                                                                  reference) -> None:
    out = tmp_path / "run"
    args = [*TINY, "--teacher", teacher_file, "--generations", "2", "--out", str(out)]

    def stop(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # Ctrl-C as generation 2 begins
        patch.setattr("recast.generations.next_plan", stop)
        assert run(args) == 130
    assert f"recast --resume {out}" in capsys.readouterr().err
    assert (out / "generations" / "1" / "generation.json").is_file()
    assert not (out / "report.json").exists() and not (out / "generations" / "2").exists()
    first = (out / "generations" / "1" / "student.safetensors").read_bytes()
    calls = _counting_recasts(monkeypatch)
    assert run(["--resume", str(out)]) == 0
    assert len(calls) == 1  # generation 2 only: generation 1's student was reused
    assert (out / "generations" / "1" / "student.safetensors").read_bytes() == first
    assert _same(load_file(str(out / "student.safetensors")),
                 load_file(str(reference / "student.safetensors")))


def test_a_run_killed_inside_generation_two_resumes_there(tmp_path, monkeypatch, teacher_file,
                                                           reference) -> None:
    import recast.checkpoint

    out = tmp_path / "run"
    args = [*TINY, "--teacher", teacher_file, "--generations", "2", "--out", str(out)]
    real = recast.checkpoint.atomic_write_text
    written = {"n": 0}

    def crashing(path, text):  # the second checkpoint of generation 2 is never committed
        if (out / "generations" / "1" / "generation.json").is_file():
            written["n"] += 1
            if written["n"] == 2:
                raise SystemExit("simulated crash")
        real(path, text)

    with monkeypatch.context() as patch:
        patch.setattr(recast.checkpoint, "atomic_write_text", crashing)
        with pytest.raises(SystemExit):
            run(args)
    assert (out / "checkpoint" / "generation-2" / "latest.json").is_file()
    calls = _counting_recasts(monkeypatch)
    assert run(["--resume", str(out)]) == 0
    assert len(calls) == 1
    report = json.loads((out / "report.json").read_text())
    assert report["resumed"] and [r["generation"] for r in report["generations"]] == [1, 2]
    assert _same(load_file(str(out / "student.safetensors")),
                 load_file(str(reference / "student.safetensors")))


def test_later_generations_start_from_scratch_as_born_again_networks_do() -> None:
    from recast.pipeline import born_again
    from recast.settings import RecastConfig

    config = RecastConfig(init="teacher")
    assert born_again(config, 1) is config
    assert born_again(config, 2).init == "random" and born_again(config, 3).init == "random"
    assert born_again(config, 2).lr == config.lr  # nothing else changes
