"""Files written so that a crash never leaves a half-written one behind."""

import os
from pathlib import Path

from safetensors.torch import save_file
from torch import nn


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file, flush, fsync, then rename over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_save_weights(module: nn.Module, path: Path) -> None:
    """``module``'s state dict as safetensors, fsynced and renamed into place."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file(state, str(tmp))
    except Exception as exc:  # safetensors raises its own error type on I/O failure
        raise OSError(f"cannot write {path}: {str(exc).splitlines()[0][:80]}") from exc
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
