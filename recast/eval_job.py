"""`recast eval`: a saved student scored again, on the data its run recorded or on data
given, with the normalisation it was trained under."""

import json
from pathlib import Path

import torch

from recast.datasets import BatchLoader, load_job_data
from recast.errors import RecastError
from recast.progress import Progress
from recast.serialize import read_student
from recast.training import evaluate


def run_eval(run_dir: str, dataset: str | None, data_dir: str | None,
             limit_test: int | None, quiet: bool = False) -> None:
    """`recast eval`: the saved student on the data the run recorded (or the data given)."""
    folder = Path(run_dir)
    student, arch = read_student(folder)
    config_file = folder / "config.json"
    saved = json.loads(config_file.read_text()) if config_file.is_file() else {}
    record = saved.get("data", {})
    if dataset is None and data_dir is None:
        data_dir, dataset = record.get("data_dir"), record.get("dataset")
        limit_test = limit_test or record.get("limit_test")
        if data_dir is not None and not Path(data_dir).exists():
            raise RecastError(f"the run was trained on {data_dir}, which is gone; pass the "
                              f"data with --data-dir DIR")
    progress = Progress(quiet=quiet)
    data = load_job_data(dataset, data_dir, None, limit_test, progress)
    if not data.test.labelled:
        raise RecastError(f"{data.source} has no test labels, so there is no accuracy to "
                          f"compute; pass labelled test images with --data-dir DIR")
    classes = arch.get("num_classes")
    if data.num_classes == 0:  # training images without labels: the test labels must fit
        data.num_classes = max(classes or 0, int(data.test.labels.max()) + 1)
    if classes is not None and classes != data.num_classes:
        raise RecastError(f"the student has {classes} classes but the data has "
                          f"{data.num_classes}; evaluate it on the data it was trained on")
    norm = saved.get("normalisation", {})
    mean, std = tuple(norm.get("mean", data.mean)), tuple(norm.get("std", data.std))
    loader = BatchLoader(data.test, mean, std, 256, train=False)
    try:
        accuracy = evaluate(student, loader, torch.device("cpu"))
    except RuntimeError as exc:
        raise RecastError(f"the saved student does not fit this data "
                          f"({str(exc).splitlines()[0][:120]}); use the data it was "
                          f"trained on") from exc
    print(json.dumps({"run": str(run_dir), "accuracy": round(accuracy, 2),
                      "test_images": len(data.test), "data": data.source}))
