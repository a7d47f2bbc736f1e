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


def test_a_convnext_student_with_its_layernorm2d_saves_and_loads(tmp_path) -> None:
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    from recast.serialize import load_student, save_student

    model = ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], num_classes=10)
    plan = make_plan(walk(model.eval(), (1, 3, 32, 32)), "dwconv", 0.5)
    student = plan.build_student().eval()
    save_student(student, [s.spec for s in plan.steps], tmp_path)
    loaded = load_student(tmp_path).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(student(x), loaded(x))


def test_a_layer_that_cannot_be_saved_is_refused_before_training(capsys, tmp_path) -> None:
    from conftest import cli_error

    source = tmp_path / "net.py"
    source.write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Scale(nn.Module):\n"
        "    def forward(self, x):\n        return x * 2\n\n"
        "def build(num_classes=10):\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),\n"
        "        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), Scale(),\n"
        "        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))\n")
    out = tmp_path / "run"
    err = cli_error(capsys, ["--model-file", f"{source}:build", "--target", "conv", "--width",
                             "0.5", "--preset", "smoke", "--leaf-module", "Scale",
                             "--out", str(out)])
    assert "cannot save layer" in err and not out.exists()


def test_timms_linear_is_saved_as_the_torch_linear_it_computes() -> None:
    timm = pytest.importorskip("timm")
    from recast.saved_layers import module_from_json, module_to_json

    layer = timm.layers.linear.Linear(4, 3)
    loaded = module_from_json(module_to_json(layer))
    assert type(loaded) is torch.nn.Linear
    loaded.load_state_dict(layer.state_dict())
    x = torch.randn(2, 4)
    assert torch.equal(layer(x), loaded(x))
