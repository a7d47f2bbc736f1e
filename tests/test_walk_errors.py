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


def test_untraceable_model_names_the_model_and_the_fix() -> None:
    with pytest.raises(WalkError, match="cannot trace DataDependent.*control flow"):
        walk(DataDependent())


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
