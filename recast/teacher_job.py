"""`recast train`: a teacher alone, saved as a state dict, and resumable.

A teacher trained to convergence takes hours on a CPU (and the paper's
schedules days on a GPU), so the training keeps a checkpoint beside its
``--out`` after every pass over the data; `--resume` continues from the last
one with the same weights, optimiser, schedule and data order, and the
checkpoint goes once the teacher is saved.
"""

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from recast.checkpoint import CheckpointStore, rng_state, set_rng_state
from recast.datasets import BatchLoader
from recast.errors import RecastError, Stopped
from recast.files import atomic_save_weights
from recast.jobs import load_job_data
from recast.progress import Progress
from recast.teacher import TEACHER_PRESETS, ModelSpec, build_teacher, train_teacher
from recast.training import pick_device


def checkpoint_folder(path: Path) -> Path:
    """Where the training of the teacher ``path`` keeps its checkpoints."""
    return path.with_name(path.name + ".checkpoint")


def run_train(model: ModelSpec, data_dir: str | None, limits: tuple[int | None, int | None],
              epochs: float | None, lr: float | None, batch_size: int, out: str | None,
              seed: int, device: str, quiet: bool, resume: bool = False) -> None:
    """`recast train`: a teacher alone, saved as a state dict."""
    progress = Progress(quiet=quiet)
    torch.manual_seed(seed)
    data = load_job_data(model.dataset, data_dir, *limits, progress)
    if not data.labelled:
        split = "training" if not data.train.labelled else "test"
        raise RecastError(f"{data.source} has no {split} labels, but a teacher is trained and "
                          f"scored on labels; train it on labelled data, then recast this "
                          f"data with --teacher FILE")
    teacher = build_teacher(model, data.num_classes, data.in_channels, data.image_size)
    path = Path(out or f"{model.label}-teacher.safetensors")
    default_epochs, default_lr = TEACHER_PRESETS["fast"]
    epochs, lr = epochs or default_epochs, lr or default_lr
    settings = {"model": dataclasses.asdict(model), "data": data.source, "epochs": epochs,
                "lr": lr, "batch_size": batch_size, "seed": seed,
                "images": [len(data.train), len(data.test)]}
    store = CheckpointStore(checkpoint_folder(path))
    _check_out(path, store, resume)
    train_loader = BatchLoader(data.train, data.mean, data.std, batch_size, train=True, seed=seed)
    test_loader = BatchLoader(data.test, data.mean, data.std, 256, train=False)
    position = _restore(store, settings, teacher, train_loader, progress) if resume else None

    def save(state: dict[str, Any]) -> None:
        optimizer = state.pop("optimizer")
        store.save({"settings": settings, "position": state,
                    "rng": rng_state(train_loader.generator)}, teacher, optimizer)

    try:
        result = train_teacher(teacher, train_loader, test_loader, epochs, lr,
                               pick_device(device), progress, checkpoint=save, resume=position)
    except KeyboardInterrupt as stop:
        name = stop.signal_name if isinstance(stop, Stopped) else "SIGINT"
        raise Stopped(name, then="continue it from its last full pass with the same command "
                                 "and --resume") from None
    atomic_save_weights(teacher, path)
    shutil.rmtree(store.folder, ignore_errors=True)
    print(json.dumps({"out": str(path), "accuracy": round(result["accuracy"], 2),
                      "seconds": round(result["seconds"], 1)}))


def _check_out(path: Path, store: CheckpointStore, resume: bool) -> None:
    """Refuse, before any training, an --out that exists or cannot be written, and a
    partial training that --resume would have to continue (or has none to)."""
    if path.exists():
        raise RecastError(f"--out {path} exists; choose a new file name")
    if resume and store.latest() is None:
        raise RecastError(f"--resume: no checkpoint of {path} in {store.folder}; start "
                          f"without --resume")
    if not resume and store.folder.exists():
        raise RecastError(f"a partial training of {path} is in {store.folder}; continue it "
                          f"with --resume (same flags) or delete that folder")
    try:  # find out now, not after the training, that the file cannot be written
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_name(path.name + ".tmp").write_bytes(b"")
        path.with_name(path.name + ".tmp").unlink()
    except OSError as exc:
        raise RecastError(f"--out {path} cannot be written ({exc.strerror}); choose another "
                          f"path") from exc


def _restore(store: CheckpointStore, settings: dict[str, Any], teacher: torch.nn.Module,
             train_loader: BatchLoader, progress: Progress) -> dict[str, Any]:
    """The weights, data order and training position of the last checkpoint, refused
    when it was made with other settings (its schedule would not be this one)."""
    saved = store.latest()
    assert saved is not None  # _check_out refused a resume without one
    differ = [k for k, v in settings.items() if saved["settings"].get(k) != v]
    if differ:
        raise RecastError(f"--resume: the checkpoint in {store.folder} was made with other "
                          f"{', '.join(differ)}; resume with the flags it was started with")
    teacher.load_state_dict(store.weights(saved))
    set_rng_state(saved["rng"], train_loader.generator)
    position = dict(saved["position"], optimizer=store.optimizer(saved))
    progress.log(f"teacher: resuming after {position['images']:,} training images")
    return position
