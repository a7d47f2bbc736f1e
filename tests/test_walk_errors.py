"""Models that are not a traceable chain get an error naming the cause."""

import pytest
import torch
from torch import nn

from recast.errors import WalkError
from recast.walker import walk


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # control flow on a tensor value: fx cannot trace it
            return self.conv(x)
        return x


class TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(x)
        return y, y.mean()


class TwoInputs(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


class Gate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # control flow on a tensor value, inside a submodule
            return x
        return -x


class GatedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.body = nn.Sequential(Gate(), nn.ReLU())
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(self.conv(x)).mean((2, 3)))


def test_untraceable_model_names_the_model_the_line_and_the_fix() -> None:
    with pytest.raises(WalkError, match=r"cannot trace DataDependent \(the model itself\): "
                                        r"Python control flow on tensor values at "
                                        r".*test_walk_errors\.py:\d+ \('if x\.sum"):
        walk(DataDependent())


def test_data_dependent_submodule_names_path_class_line_and_leaf_module() -> None:
    with pytest.raises(WalkError) as error:
        walk(GatedNet(), (1, 3, 8, 8))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("cannot trace body.0 (Gate): Python control flow on tensor "
                              "values at ")
    assert "test_walk_errors.py:" in message
    assert "('if x.sum() > 0:" in message and "--leaf-module Gate" in message


def test_data_dependent_submodule_walks_exactly_as_a_leaf_module() -> None:
    model = GatedNet().eval()
    chain = walk(model, (1, 3, 8, 8), leaf_modules=["Gate"])
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert (model(x) - chain.as_module()(x)).abs().max() < 1e-5
        assert (model(-x) - chain.as_module()(-x)).abs().max() < 1e-5


def test_several_outputs_are_refused() -> None:
    with pytest.raises(WalkError, match="TwoOutputs returns tuple of several outputs"):
        walk(TwoOutputs())


def test_several_inputs_are_refused() -> None:
    with pytest.raises(WalkError, match="takes 2 inputs"):
        walk(TwoInputs())


def test_wrong_input_size_is_named() -> None:
    from recast.models import build_model

    with pytest.raises(WalkError, match="input of shape"):
        walk(build_model("vgg11", width=0.25), (1, 3, 16, 16))
