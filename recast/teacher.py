"""Teachers: load a state dict safely, or train one with a standard recipe."""

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from recast.errors import RecastError
from recast.progress import Progress
from recast.training import Schedule, evaluate, run_batches

TEACHER_PRESETS = {  # epochs, lr: SGD + nesterov momentum 0.9, cosine, wd 5e-4
    "paper": (200, 0.1),
    "fast": (15, 0.05),
    "smoke": (1, 0.05),
}


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


def load_teacher(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights into ``model``; a mismatch names the keys at fault."""
    state = load_state(path)
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
            parts.append(f"shape differs for {', '.join(wrong[:3])}")
        raise RecastError(f"--teacher {path} is not a state dict of this model "
                          f"({'; '.join(parts)}); check the model name, --teacher-width "
                          f"and the class count")
    model.load_state_dict(state)
    return model


def train_teacher(model: nn.Module, train_loader, test_loader, epochs: float, lr: float,
                  device: torch.device, progress: Progress) -> dict[str, float]:
    """CE training, SGD + nesterov momentum, cosine LR, weight decay 5e-4."""
    model.to(device).train()
    schedule = Schedule(epochs, lr, "sgd", "cosine", weight_decay=5e-4)
    result = run_batches(lambda x, y: F.cross_entropy(model(x), y), list(model.parameters()),
                         train_loader, schedule, device, progress, "teacher")
    result["accuracy"] = evaluate(model, test_loader, device)
    return result
