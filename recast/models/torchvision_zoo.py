"""Every torchvision classification model, by its torchvision name, untrained.

Built with ``torchvision.models.get_model(name, weights=None, ...)`` so nothing
is ever downloaded; a user who wants pre-trained weights loads them into the
returned model. Only the top-level classification models are listed (not the
detection, segmentation, video, optical-flow or quantized ones).

Adjustments so every name gives a plain image -> logits module:

- googlenet and inception_v3 are built without auxiliary heads (their
  training-mode forward would otherwise return a named tuple) and with
  ``init_weights=True`` (torchvision's current default, stated to silence its
  warning).
- ViTs are built for the requested input size (``image_size``), and MaxViT
  for ``input_size``; both otherwise only accept 224x224.
- ``in_channels != 3`` replaces the first ``nn.Conv2d`` (the stem in every
  listed model) by a freshly initialised one with that many input channels.
"""

import re

import torchvision
from torch import nn

__all__ = ["TORCHVISION_NAMES", "build_torchvision", "input_size_error"]

TORCHVISION_NAMES: tuple[str, ...] = tuple(
    torchvision.models.list_models(module=torchvision.models)
)

# Smallest square input that survives each model's down-sampling (measured).
_MIN_INPUT_SIZE = {"alexnet": 63, "inception_v3": 75}
_VIT_PATCH = re.compile(r"^vit_[a-z]_(\d+)$")


def input_size_error(name: str, input_size: int) -> str | None:
    """Why torchvision model ``name`` cannot take ``input_size`` inputs, or None if it can."""
    vit = _VIT_PATCH.match(name)
    if vit is not None:
        patch = int(vit.group(1))
        if input_size % patch:
            return (f"{name} needs an input size divisible by its patch size {patch}, "
                    f"got input_size={input_size}")
    elif name == "maxvit_t":
        if input_size % 224:
            return f"maxvit_t needs an input size that is a multiple of 224, got {input_size}"
    elif input_size < _MIN_INPUT_SIZE.get(name, 0):
        least = _MIN_INPUT_SIZE[name]
        return f"{name} needs inputs of at least {least}x{least}, got input_size={input_size}"
    return None


def _replace_first_conv(model: nn.Module, in_channels: int) -> None:
    """Swap the first Conv2d for an identical one reading ``in_channels`` channels."""
    for path, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            break
    else:
        raise ValueError(f"{type(model).__name__} has no Conv2d to take {in_channels} channels")
    if module.groups != 1:
        raise ValueError(f"the first conv of {type(model).__name__} is grouped; "
                         "cannot change its input channels")
    new = nn.Conv2d(in_channels, module.out_channels, module.kernel_size, module.stride,
                    module.padding, module.dilation, bias=module.bias is not None,
                    padding_mode=module.padding_mode)
    nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    parent_path, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent_path), child, new)


def build_torchvision(name: str, *, num_classes: int = 1000, in_channels: int = 3,
                      width: float = 1.0, input_size: int = 224) -> nn.Module:
    """Untrained torchvision model ``name``; ``width`` must stay 1.0."""
    if name not in TORCHVISION_NAMES:
        raise ValueError(f"{name!r} is not a torchvision classification model")
    if width != 1.0:
        raise ValueError(f"width={width} is not supported for torchvision's {name}: "
                         "the width multiplier only applies to the CIFAR zoo")
    problem = input_size_error(name, input_size)
    if problem is not None:
        raise ValueError(problem)
    kwargs: dict[str, object] = {}
    if name in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=True)
    elif _VIT_PATCH.match(name):
        kwargs["image_size"] = input_size
    elif name == "maxvit_t":
        kwargs["input_size"] = (input_size, input_size)
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    if in_channels != 3:
        _replace_first_conv(model, in_channels)
    return model
