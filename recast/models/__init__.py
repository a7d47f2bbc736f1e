"""The model zoo: build any teacher by name.

Two zoos share one namespace:

- the CIFAR zoo (``CIFAR_MODELS``, the registry below): the paper's 32x32
  teachers (VGG-BN, ResNets, Wide ResNets, DenseNet-BC; each module says
  where it follows the authors' scripts and where it does not), every one
  taking ``num_classes``, ``in_channels`` and a ``width`` channel multiplier;
- every torchvision classification model, untrained, by its torchvision name;
- with the optional timm installed, every timm model as ``timm/NAME``.

A name in both (vgg11/13/16/19) means the CIFAR model for 32x32-class inputs
(``input_size <= 64``) and torchvision's otherwise. Names in only one zoo go
to that zoo at any size, when the model can take it: CIFAR ResNets, WRNs and
DenseNets pool globally and work at 224, the CIFAR VGGs only at 32.
"""

import difflib
from collections.abc import Callable

from torch import nn

from ..errors import RecastError
from . import densenet, resnet, vgg, wrn
from .timm_zoo import build_timm, is_timm_name
from .torchvision_zoo import TORCHVISION_NAMES, build_torchvision, input_size_error

__all__ = ["CIFAR_MODELS", "UnknownModelError", "build_model", "model_names"]

ModelBuilder = Callable[..., nn.Module]

# name -> builder(*, num_classes, in_channels, width)
CIFAR_MODELS: dict[str, ModelBuilder] = {
    "vgg11": vgg.vgg11,
    "vgg13": vgg.vgg13,
    "vgg16": vgg.vgg16,
    "vgg19": vgg.vgg19,
    "resnet20": resnet.resnet20,
    "resnet32": resnet.resnet32,
    "resnet44": resnet.resnet44,
    "resnet56": resnet.resnet56,
    "resnet110": resnet.resnet110,
    "resnet29": resnet.resnet29,
    "resnet83": resnet.resnet83,
    "resnet164": resnet.resnet164,
    "wrn_16_4": wrn.wrn_16_4,
    "wrn_16_8": wrn.wrn_16_8,
    "wrn_28_2": wrn.wrn_28_2,
    "wrn_28_10": wrn.wrn_28_10,
    "wrn_40_4": wrn.wrn_40_4,
    "densenet_bc_40_12": densenet.densenet_bc_40_12,
    "densenet_bc_100_12": densenet.densenet_bc_100_12,
}

# CIFAR models whose classifier needs exactly 32x32 inputs -> torchvision alternative.
_ONLY_32: dict[str, str] = {f"vgg{d}": f"vgg{d}_bn" for d in (11, 13, 16, 19)}
_CIFAR_MAX_INPUT = 64


class UnknownModelError(RecastError, ValueError):
    """No model of that name in either zoo; the message suggests the closest names."""


def _all_names() -> list[str]:
    return sorted(set(CIFAR_MODELS) | set(TORCHVISION_NAMES))


def _uses_cifar_zoo(name: str, input_size: int) -> bool:
    """Which zoo ``name`` resolves to (the name must be in at least one)."""
    if name not in TORCHVISION_NAMES:
        return True
    return name in CIFAR_MODELS and input_size <= _CIFAR_MAX_INPUT


def _size_problem(name: str, input_size: int) -> str | None:
    """Why ``name`` cannot be built for ``input_size`` inputs, or None."""
    if not _uses_cifar_zoo(name, input_size):
        return input_size_error(name, input_size)
    if name in _ONLY_32 and input_size != 32:
        return (f"the CIFAR {name} takes 32x32 inputs only (its Linear reads the 1x1 map "
                f"left by five 2x2 pools), got input_size={input_size}; "
                f"use torchvision's '{_ONLY_32[name]}' instead")
    return None


def model_names(input_size: int | None = None) -> list[str]:
    """All model names, sorted; with ``input_size``, only those buildable at that size."""
    names = _all_names()
    if input_size is None:
        return names
    return [n for n in names if _size_problem(n, input_size) is None]


def build_model(name: str, *, num_classes: int = 10, in_channels: int = 3,
                width: float = 1.0, input_size: int = 32) -> nn.Module:
    """Build an untrained model by name for ``input_size`` x ``input_size`` images.

    Raises UnknownModelError for an unknown name and ValueError when the model
    cannot be built as asked (a width multiplier on a torchvision model, an
    input size the model cannot take, ...).
    """
    if is_timm_name(name):
        return build_timm(name, num_classes=num_classes, in_channels=in_channels, width=width)
    if name not in CIFAR_MODELS and name not in TORCHVISION_NAMES:
        close = difflib.get_close_matches(name, _all_names(), n=3)
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"unknown model {name!r}{hint} (`recast models` lists all)")
    for what, value in (("num_classes", num_classes), ("in_channels", in_channels),
                        ("input_size", input_size)):
        if value < 1:
            raise ValueError(f"{what} must be >= 1, got {value}")
    problem = _size_problem(name, input_size)
    if problem is not None:
        raise ValueError(problem)
    if _uses_cifar_zoo(name, input_size):
        return CIFAR_MODELS[name](num_classes=num_classes, in_channels=in_channels,
                                  width=width)
    return build_torchvision(name, num_classes=num_classes, in_channels=in_channels,
                             width=width, input_size=input_size)
