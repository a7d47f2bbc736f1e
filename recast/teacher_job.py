"""`recast train`: a teacher alone, saved as a state dict, and resumable.

A teacher trained to convergence takes hours on a CPU, so the training keeps a checkpoint beside its
``--out`` after every pass over the data; `--resume` continues from the last
one with the same weights, optimiser, schedule and data order, and the
checkpoint goes once the teacher is saved.
"""

import dataclasses
import json
from pathlib import Path

import torch

from recast.datasets import BatchLoader, load_job_data
from recast.errors import RecastError, Stopped
from recast.files import atomic_save_weights
from recast.progress import Progress
from recast.teacher import TEACHER_PRESETS, ModelSpec, build_teacher, train_teacher
from recast.teacher_checkpoint import TeacherCheckpoints
from recast.training import pick_device


def run_train(model: ModelSpec, data_dir: str | None, limits: tuple[int | None, int | None],
              epochs: float | None, lr: float | None, batch_size: int, out: str | None,
              seed: int, device: str, quiet: bool, resume: bool = False) -> None:
    """`recast train`: a teacher alone, saved as a state dict."""
    progress = Progress(quiet=quiet)
    torch.manual_seed(seed)
    # by its absolute path, the data a checkpoint names is the same however it is typed
    data_dir = str(Path(data_dir).resolve()) if data_dir else None
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
    checkpoints = TeacherCheckpoints.beside(path, settings)
    _check_out(path, checkpoints, resume)
    train_loader = BatchLoader(data.train, data.mean, data.std, batch_size, train=True, seed=seed)
    test_loader = BatchLoader(data.test, data.mean, data.std, 256, train=False)
    position = checkpoints.restore(teacher, train_loader, progress) if resume else None
    try:
        result = train_teacher(teacher, train_loader, test_loader, epochs, lr,
                               pick_device(device), progress,
                               checkpoint=checkpoints.saver(teacher, train_loader),
                               resume=position)
    except KeyboardInterrupt as stop:
        then = "continue it from its last full pass with the same command and --resume" \
            if checkpoints.latest() is not None else "no pass had finished: train again"
        raise Stopped.saying(stop, then) from None
    atomic_save_weights(teacher, path)
    checkpoints.remove()
    print(json.dumps({"out": str(path), "accuracy": round(result["accuracy"], 2),
                      "seconds": round(result["seconds"], 1)}))


def _check_out(path: Path, checkpoints: TeacherCheckpoints, resume: bool) -> None:
    """Refuse, before any training, an --out that exists or cannot be written, and a
    partial training that --resume would have to continue (or has none to)."""
    if path.exists():
        raise RecastError(f"--out {path} exists; choose a new file name")
    saved = checkpoints.latest()
    if resume and saved is None:
        raise RecastError(f"--resume: no checkpoint of {path} in {checkpoints.folder}; start "
                          f"without --resume")
    if not resume and saved is not None:
        raise RecastError(f"a partial training of {path} is in {checkpoints.folder}; continue it "
                          f"with --resume (same flags) or delete that folder")
    try:  # find out now, not after the training, that the file cannot be written
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_name(path.name + ".tmp").write_bytes(b"")
        path.with_name(path.name + ".tmp").unlink()
    except OSError as exc:
        raise RecastError(f"--out {path} cannot be written ({exc.strerror}); choose another "
                          f"path") from exc
