"""Teachers: which model the user named, its weights loaded safely, or trained.

A teacher is a zoo name or the user's own builder (``--model-file``), built
for the data's classes, channels and image size.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from recast.errors import RecastError
from recast.models import TORCHVISION_NAMES, build_model
from recast.progress import Progress
from recast.training import Schedule, evaluate, run_batches
from recast.userfile import build_user_model

DATASETS = {"cifar10": (32, 10), "cifar100": (32, 100), "imagenet": (224, 1000)}

TEACHER_PRESETS = {  # epochs, lr: SGD + nesterov momentum 0.9, cosine, wd 5e-4
    "paper": (200, 0.1),
    "fast": (15, 0.05),
    "smoke": (1, 0.05),
}




@dataclass
class ModelSpec:
    """The teacher's architecture as the user named it."""

    model: str | None = None
    model_file: str | None = None  # path/to/file.py:builder
    dataset: str | None = None  # sets input size and classes when no data is read
    input_size: int | None = None
    num_classes: int | None = None
    in_channels: int = 3
    teacher_width: float = 1.0
    leaf_modules: list[str] = field(default_factory=list)  # traced whole, never inside

    @property
    def label(self) -> str:
        return self.model or Path((self.model_file or "model").split(":")[0]).stem

    def input_shape(self) -> tuple[int, int, int, int]:
        """The shape the teacher is walked with when no data says otherwise."""
        size, _ = DATASETS.get(self.dataset or "", (None, None))
        size = self.input_size or size or (224 if self.model in TORCHVISION_NAMES else 32)
        return (1, self.in_channels, size, size)

    def classes(self) -> int:
        _, classes = DATASETS.get(self.dataset or "", (None, None))
        return self.num_classes or classes or (10 if self.input_shape()[-1] <= 64 else 1000)


def build_teacher(spec: ModelSpec, num_classes: int, in_channels: int,
                  input_size: int) -> nn.Module:
    """The zoo model or --model-file builder the spec names; errors are one line."""
    if bool(spec.model) == bool(spec.model_file):
        raise RecastError("name a zoo model or pass --model-file FILE.py:BUILDER (one of them)")
    if spec.model_file:
        return build_user_model(spec.model_file, num_classes)
    try:
        return build_model(spec.model, num_classes=num_classes, in_channels=in_channels,
                           width=spec.teacher_width, input_size=input_size)
    except ValueError as exc:
        raise RecastError(str(exc)) from exc


def untrained_teacher(spec: ModelSpec) -> tuple[nn.Module, tuple[int, int, int, int]]:
    """The teacher for ``inspect`` and ``report`` (no data), and its input shape."""
    shape = spec.input_shape()
    return build_teacher(spec, spec.classes(), shape[1], shape[-1]), shape


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or .pt/.pth with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise RecastError(f"--teacher {path} does not exist; pass a .safetensors or "
                          f".pt/.pth state dict, or leave --teacher out to train one")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "Weights only load failed" in str(exc):
            raise RecastError(f"--teacher {path} holds objects other than tensors (possibly "
                              f"code), refused unread; re-save it with "
                              f"torch.save(model.state_dict(), path) or as .safetensors") \
                from exc
        raise RecastError(f"--teacher {path} cannot be loaded safely "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
                          f"it is corrupt, truncated or holds pickled code: save a plain "
                          f"state dict (torch.save(model.state_dict(), ...))") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise RecastError(f"--teacher {path} holds a {type(state).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_teacher(model: nn.Module, path: str | Path,
                 state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Load weights into ``model`` (``state``: the file's, when read already); a
    mismatch names the keys at fault."""
    state = load_state(path) if state is None else state
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}"
                         f"{' ...' if len(unexpected) > 3 else ''}")
        if wrong:
            parts.append(", ".join(f"{k} is {list(state[k].shape)} in the file but "
                                   f"{list(own[k].shape)} here" for k in wrong[:2]))
            first, last = _first_and_last(model)
            if first in wrong and state[first].dim() == 4:
                parts.append(f"the file's model reads {state[first].shape[1]}-channel images, "
                             f"the data has {own[first].shape[1]}")
            if last in wrong:
                parts.append(f"the file's model has {state[last].shape[0]} classes, the data "
                             f"{own[last].shape[0]}")
        raise RecastError(f"--teacher {path} is not a state dict of this model "
                          f"({'; '.join(parts)}); check the model name, --teacher-width "
                          f"and that the data is the one the teacher was trained on")
    model.load_state_dict(state)
    return model


def _first_and_last(model: nn.Module) -> tuple[str | None, str | None]:
    """State-dict keys of the first conv's and the last linear's weight."""
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return (f"{convs[0]}.weight" if convs else None,
            f"{linears[-1]}.weight" if linears else None)


def train_teacher(model: nn.Module, train_loader, test_loader, epochs: float, lr: float,
                  device: torch.device, progress: Progress,
                  checkpoint: Callable[[dict[str, Any]], None] | None = None,
                  resume: dict[str, Any] | None = None) -> dict[str, float]:
    """CE training, SGD + nesterov momentum, cosine LR, weight decay 5e-4;
    ``checkpoint``/``resume`` as :func:`recast.training.run_batches` takes them."""
    model.to(device).train()
    schedule = Schedule(epochs, lr, "sgd", "cosine", weight_decay=5e-4)
    result = run_batches(lambda x, y: F.cross_entropy(model(x), y), list(model.parameters()),
                         train_loader, schedule, device, progress, "teacher",
                         checkpoint=checkpoint, resume=resume, model=model)
    result["accuracy"] = evaluate(model, test_loader, device)
    return result
