"""Checkpoints a killed run resumes from: safetensors + JSON, never pickle.

A checkpoint is a folder ``ckpt-NNNNNN`` holding ``student.safetensors``,
``optimizer.safetensors`` (optimiser state tensors) and ``state.json``
(phase, position, optimiser and scheduler scalars, RNG states, records so
far). ``latest.json`` names the newest complete one; it is replaced
atomically only after every file of the new folder is fsynced, so a crash
(or a full disk) mid-write leaves the previous checkpoint as the latest.
"""

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from recast.errors import RecastError
from recast.files import atomic_write_text


def rng_state(generator: torch.Generator | None = None) -> dict[str, list[int]]:
    """The global torch RNG (and a loader's generator) as JSON-able byte lists."""
    state = {"torch": torch.get_rng_state().tolist()}
    if generator is not None:
        state["loader"] = generator.get_state().tolist()
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, list[int]], generator: torch.Generator | None = None) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if generator is not None and "loader" in state:
        generator.set_state(torch.tensor(state["loader"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimiser state dict as (tensors for safetensors, the rest for JSON)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}/{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def join_optimizer(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        pid, key = name.split("/", 1)
        state.setdefault(int(pid), {})[key] = value
    for pid, values in rest["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    return {"state": state, "param_groups": rest["param_groups"]}


class CheckpointStore:
    """The checkpoints of one run folder: save the newest, load the latest."""

    def __init__(self, folder: Path, keep: int = 1) -> None:
        self.folder = Path(folder)
        self.keep = keep

    def latest(self) -> dict[str, Any] | None:
        """The latest complete checkpoint's state (with its folder), or None."""
        pointer = self.folder / "latest.json"
        if not pointer.is_file():
            return None
        try:
            name = json.loads(pointer.read_text())["checkpoint"]
            state = json.loads((self.folder / name / "state.json").read_text())
        except (OSError, ValueError, KeyError) as exc:
            raise RecastError(f"the checkpoint in {self.folder} is unreadable ({exc}); "
                              f"start again with --force") from exc
        state["_path"] = str(self.folder / name)
        return state

    def save(self, state: dict[str, Any], student: nn.Module,
             optimizer: dict[str, Any] | None = None) -> Path:
        """Write a new checkpoint folder, fsync it, then point latest.json at it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        number = 1 + max((int(p.name[5:]) for p in self.folder.glob("ckpt-*")
                          if p.name[5:].isdigit()), default=0)
        target = self.folder / f"ckpt-{number:06d}"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
        weights = {k: v.detach().cpu().contiguous().clone()
                   for k, v in student.state_dict().items()}
        files = {"student.safetensors": weights}
        state = dict(state)
        if optimizer is not None:
            tensors, state["optimizer"] = split_optimizer(optimizer)
            files["optimizer.safetensors"] = tensors
        try:
            for name, tensors in files.items():
                save_file(tensors, str(target / name))
            (target / "state.json").write_text(json.dumps(state))
            for path in target.iterdir():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
            _fsync_dir(target)
        except Exception as exc:  # OSError, or safetensors' own error on a full disk
            reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:80]
            raise RecastError(f"could not write checkpoint {target} ({reason}); the "
                              f"previous checkpoint is kept: free space, then rerun with "
                              f"--resume") from exc
        atomic_write_text(self.folder / "latest.json", json.dumps({"checkpoint": target.name}))
        _fsync_dir(self.folder)
        self._prune(target)
        return target

    def weights(self, state: dict[str, Any]) -> dict[str, torch.Tensor]:
        return _load(Path(state["_path"]) / "student.safetensors")

    def optimizer(self, state: dict[str, Any]) -> dict[str, Any] | None:
        if "optimizer" not in state:
            return None
        tensors = _load(Path(state["_path"]) / "optimizer.safetensors")
        return join_optimizer(tensors, state["optimizer"])

    def _prune(self, newest: Path) -> None:
        older = sorted(p for p in self.folder.glob("ckpt-*") if p != newest)
        for path in older[:max(0, len(older) - (self.keep - 1))]:
            shutil.rmtree(path, ignore_errors=True)


def _load(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise RecastError(f"checkpoint file {path} is damaged ({str(exc)[:80]}); start again "
                          f"with --force") from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
