"""ONNX export of a run folder: checked against PyTorch, timed, never overwriting."""

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from recast.datasets import CIFAR_STATS
from recast.errors import RecastError
from recast.files import atomic_save_weights
from recast.models import build_model
from recast.plan import make_plan
from recast.serialize import load_student, save_student
from recast.walker import walk

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from recast.export import export_onnx  # noqa: E402

SMALL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-small"


def _scramble_batch_norm(model: torch.nn.Module) -> None:
    """Running stats away from 0/1, so a wrong Conv+BN fusion would show in the logits."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)


def _make_run(folder: Path, argv_extra: dict | None = None) -> Path:
    """A run folder as the CLI writes it, with untrained weights (export does not care)."""
    torch.manual_seed(0)
    teacher = build_model("resnet20", width=0.25).eval()
    _scramble_batch_norm(teacher)
    plan = make_plan(walk(teacher, (1, 3, 32, 32)), "conv", 0.5)
    student = plan.build_student().eval()
    _scramble_batch_norm(student)
    folder.mkdir(parents=True)
    save_student(student, [s.spec for s in plan.steps], folder,
                 {"input_shape": [1, 3, 32, 32], "num_classes": 10})
    atomic_save_weights(teacher, folder / "teacher.safetensors")
    mean, std = CIFAR_STATS["cifar10"]
    argv = {"model": "resnet20", "model_file": None, "teacher_width": 0.25,
            "dataset": None, "data_dir": str(SMALL) if SMALL.is_dir() else None,
            "teacher": None, **(argv_extra or {})}
    (folder / "config.json").write_text(json.dumps(
        {"argv": argv, "normalisation": {"mean": list(mean), "std": list(std)}}))
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return _make_run(tmp_path_factory.mktemp("export") / "run")


def test_student_export_is_checked_and_timed(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "student.onnx"
    result = export_onnx(run_dir, out)
    assert out.is_file() and result["path"] == str(out)
    assert result["max_abs_diff"] < 1e-4 and result["check_images"] == 64
    assert "test images" in result["check_data"]
    assert result["opset"] == 17 and not result["dynamic_batch"]
    assert [o.version for o in onnx.load(str(out)).opset_import if o.domain == ""] == [17]
    for engine in ("onnxruntime", "pytorch"):
        assert set(result["latency_ms"][engine]) == {"batch1", "batch64"}
        assert all(ms > 0 for ms in result["latency_ms"][engine].values())
    assert [p.name for p in tmp_path.iterdir()] == ["student.onnx"]  # no partial file left


def test_existing_output_file_is_never_overwritten(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    out.write_text("keep me")
    with pytest.raises(RecastError, match="already exists") as info:
        export_onnx(run_dir, out)
    assert str(out) in str(info.value) and "\n" not in str(info.value)
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("missing", ["onnxruntime", "onnx"])
def test_missing_onnx_packages_name_the_extra(run_dir: Path, tmp_path: Path, monkeypatch,
                                             missing: str) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` fail
    with pytest.raises(RecastError) as info:
        export_onnx(run_dir, tmp_path / "x.onnx")
    message = str(info.value)
    assert "pip install 'recast[export]'" in message and missing in message
    assert "\n" not in message and not (tmp_path / "x.onnx").exists()


def test_dynamic_batch_file_runs_at_two_batch_sizes(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "dynamic.onnx"
    result = export_onnx(run_dir, out, dynamic_batch=True, opset=13)
    assert result["dynamic_batch"] and result["opset"] == 13 and result["max_abs_diff"] < 1e-4
    student = load_student(run_dir)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        x = torch.randn(batch, 3, 32, 32)
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.inference_mode():
            expected = student(x).numpy()
        assert got.shape == (batch, 10)
        assert abs(got - expected).max() < 1e-4


def test_fixed_batch_file_takes_one_image(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "fixed.onnx"
    export_onnx(run_dir, out)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 32, 32]


def test_teacher_is_rebuilt_from_the_run_config(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "teacher.onnx"
    result = export_onnx(run_dir, out, teacher=True)
    assert result["model"] == "teacher" and result["max_abs_diff"] < 1e-4
    teacher = build_model("resnet20", width=0.25)
    teacher.load_state_dict(load_file(str(run_dir / "teacher.safetensors")))
    x = torch.randn(1, 3, 32, 32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = teacher.eval()(x).numpy()
    assert abs(session.run(None, {"input": x.numpy()})[0] - expected).max() < 1e-4


def test_teacher_from_user_code_is_refused(tmp_path: Path) -> None:
    run = _make_run(tmp_path / "run", {"model": None, "model_file": "nets.py:build"})
    with pytest.raises(RecastError, match="--model-file nets.py:build") as info:
        export_onnx(run, tmp_path / "t.onnx", teacher=True)
    assert "\n" not in str(info.value) and not (tmp_path / "t.onnx").exists()


def test_failed_check_keeps_no_file(run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import recast.export

    monkeypatch.setattr(recast.export, "TOLERANCE", -1.0)  # every difference fails
    out = tmp_path / "bad.onnx"
    with pytest.raises(RecastError, match="was not kept") as info:
        export_onnx(run_dir, out)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_unsupported_opset_is_one_line(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(RecastError, match="--opset 99") as info:
        export_onnx(run_dir, tmp_path / "x.onnx", opset=99)
    assert "\n" not in str(info.value) and list(tmp_path.iterdir()) == []


def test_demo_sample_when_the_run_data_is_gone(tmp_path: Path) -> None:
    run = _make_run(tmp_path / "run", {"data_dir": str(tmp_path / "moved-away")})
    result = export_onnx(run, tmp_path / "s.onnx")
    assert "demo sample" in result["check_data"] and result["max_abs_diff"] < 1e-4
