"""Checkpoints of a teacher's training, one after every pass over the data: what
`recast train --resume`, and a resumed run that was still training its teacher,
continue from, with the same weights, optimiser, schedule and data order."""

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from recast import distributed
from recast.checkpoint import CheckpointStore, rng_state, set_rng_state
from recast.errors import RecastError
from recast.progress import Progress


def _differences(then: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """'name (old then, new now)' for each setting that changed, nested ones by their
    dotted name (model.teacher_width), so a refusal names the flag to put back."""
    changed = []
    for key in sorted(then.keys() | now.keys()):
        old, new = then.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            changed.append(f"{prefix}{key} ({old} then, {new} now)")
    return changed


class TeacherCheckpoints:
    """The checkpoints in ``folder``; ``settings`` (when given) must match on a resume,
    since a checkpoint of another schedule cannot be continued as this one."""

    def __init__(self, folder: Path, settings: dict[str, Any] | None = None) -> None:
        self.store = CheckpointStore(folder)
        self.settings = settings

    @classmethod
    def beside(cls, path: Path, settings: dict[str, Any] | None = None) -> "TeacherCheckpoints":
        """The checkpoints of the training whose teacher is saved as ``path``, kept
        beside it (``recast train --out``)."""
        return cls(path.with_name(path.name + ".checkpoint"), settings)

    @property
    def folder(self) -> Path:
        return self.store.folder

    def latest(self) -> dict[str, Any] | None:
        """The last complete checkpoint, or None (a folder a kill left empty has none)."""
        try:
            return self.store.latest()
        except RecastError as exc:
            raise RecastError(f"the teacher checkpoint in {self.folder} is unreadable; "
                              f"delete that folder and train again") from exc

    def restore(self, teacher: nn.Module, train_loader, progress: Progress
                ) -> dict[str, Any] | None:
        """Load the last checkpoint into ``teacher`` and the loader's generator; the
        training position to resume from, or None when there is no checkpoint."""
        saved = self.latest()
        if saved is None:
            return None
        if self.settings is not None:
            differ = _differences(saved["settings"], self.settings)
            if differ:
                raise RecastError(f"--resume: the checkpoint in {self.folder} was made with "
                                  f"other {', '.join(differ)}; resume with the flags it was "
                                  f"started with")
        teacher.load_state_dict(self.store.weights(saved))
        set_rng_state(saved["rng"], train_loader.generator)
        position = dict(saved["position"], optimizer=self.store.optimizer(saved))
        progress.log(f"teacher: resuming its training after {position['images']:,} images")
        return position

    def saver(self, teacher: nn.Module, train_loader) -> Callable[[dict[str, Any]], None]:
        """The ``checkpoint`` callback of the training (rank 0 writes)."""
        def save(position: dict[str, Any]) -> None:
            if distributed.is_main():
                position = dict(position)
                optimizer = position.pop("optimizer")
                self.store.save({"settings": self.settings, "position": position,
                                 "rng": rng_state(train_loader.generator)}, teacher, optimizer)
        return save

    def remove(self) -> None:
        """Once the teacher is saved, its checkpoints are no longer needed."""
        shutil.rmtree(self.folder, ignore_errors=True)
