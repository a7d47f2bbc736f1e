"""Running the chain of extracted blocks reproduces the teacher exactly."""

import pytest
import torch
import torchvision

from recast.models import build_model
from recast.walker import walk

CIFAR = [("vgg16", 0.25), ("vgg11", 0.25), ("resnet20", 1.0), ("resnet83", 0.5),
         ("wrn_16_4", 0.5), ("densenet_bc_100_12", 0.5)]


def _assert_exact(model: torch.nn.Module, shape: tuple[int, ...]) -> None:
    model.eval()
    chain = walk(model, shape)
    x = torch.randn((2, *shape[1:]))
    with torch.no_grad():
        expected, got = model(x), chain.as_module()(x)
    assert torch.allclose(expected, got, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,width", CIFAR)
def test_cifar_zoo_chain_is_exact(name: str, width: float) -> None:
    _assert_exact(build_model(name, width=width), (1, 3, 32, 32))


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "densenet121",
                                  "mobilenet_v2", "squeezenet1_1", "shufflenet_v2_x0_5"])
def test_torchvision_chain_is_exact(name: str) -> None:
    _assert_exact(torchvision.models.get_model(name, weights=None), (1, 3, 64, 64))


def test_chain_is_exact_in_train_mode_inputs_after_walk() -> None:
    """Walking puts the model in eval only while tracing, then restores it."""
    model = build_model("resnet20").train()
    walk(model)
    assert model.training
