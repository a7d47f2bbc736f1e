"""recast/serialize.py: a student saved as data loads without pickle or teacher code."""

import json

import pytest
import torch

from recast.errors import RecastError
from recast.models import build_model
from recast.plan import make_plan
from recast.serialize import load_student, save_student
from recast.walker import walk


@pytest.fixture
def saved(tmp_path):
    plan = make_plan(walk(build_model("resnet20", width=0.25)), "conv", 0.5)
    student = plan.build_student().eval()
    save_student(student, [s.spec for s in plan.steps], tmp_path, {"num_classes": 10})
    return student, tmp_path


def test_a_saved_student_gives_identical_logits(saved) -> None:
    student, folder = saved
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(load_student(folder)(x), student(x))


def test_a_truncated_weights_file_is_one_line(saved) -> None:
    _, folder = saved
    path = folder / "student.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(RecastError, match="truncated or corrupt"):
        load_student(folder)


def test_an_unknown_format_is_refused(saved) -> None:
    _, folder = saved
    arch = json.loads((folder / "student.json").read_text())
    arch["format"] = "other"
    (folder / "student.json").write_text(json.dumps(arch))
    with pytest.raises(RecastError, match="format"):
        load_student(folder)
