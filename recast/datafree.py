"""``--data synthetic``: recast with no training image at all, only the teacher.

The transfer set is synthesised from the teacher's BatchNorm statistics
(recast/synthesize.py), saved in the run folder as synthetic.npz (x only: it
has no labels, so the run is label-free) and read back on --resume. Data given
with --data-dir is used for the test set only: no training step reads it. The
input normalisation is the teacher's: CIFAR's with --dataset, otherwise the
test images' channel statistics (the only thing read of them before testing).
"""

import json
import time
from pathlib import Path

import numpy as np
import torch

from recast.datasets import CIFAR_STATS, BatchLoader, Data, ImageSet, channel_stats
from recast.files import atomic_write_text
from recast.labels import teacher_classes
from recast.progress import Progress
from recast.runspec import RunSpec
from recast.synthesize import SynthesisSettings, statistics_gap, synthesize
from recast.teacher import build_teacher, load_teacher

SYNTHETIC = "synthetic.npz"


def synthetic_train_set(spec: RunSpec, data: Data, saved: Path | None, progress: Progress,
                        teacher_state: dict[str, torch.Tensor] | None) -> dict:
    """Replace ``data.train`` by the synthetic set (from ``saved`` on a resume);
    ``teacher_state``: the contents of ``spec.teacher`` (None without one)."""
    if spec.model.dataset in CIFAR_STATS:
        data.mean, data.std = CIFAR_STATS[spec.model.dataset]
    else:
        data.mean, data.std = channel_stats(data.test.images)
    if saved is not None and (saved / SYNTHETIC).is_file():
        pixels = np.load(saved / SYNTHETIC)["x"]
        info = json.loads((saved / "synthetic.json").read_text())
        progress.log(f"recast: note: the synthetic training set of {saved} is reused")
    else:
        classes = teacher_classes(spec.model, spec.teacher, data, teacher_state)
        teacher = build_teacher(spec.model, classes, data.in_channels, data.image_size)
        load_teacher(teacher, spec.teacher, teacher_state)
        settings = SynthesisSettings(images=spec.synthetic_images, steps=spec.synthetic_steps,
                                     seed=spec.seed)
        progress.log(f"synthesising {settings.images} images from the teacher's BN statistics "
                     f"({settings.steps} steps a batch)")
        started = time.perf_counter()
        pixels, _ = synthesize(teacher, (data.in_channels, data.image_size, data.image_size),
                               classes, data.mean, data.std, settings, progress)
        seconds = round(time.perf_counter() - started, 1)
        synthetic = torch.from_numpy(pixels).permute(0, 3, 1, 2)
        # how close each set's BN statistics come to the teacher's (measured, not trained on)
        gap = {name: _statistics_gap(teacher, images, data)
               for name, images in (("synthetic", synthetic), ("test images", data.test.images))}
        info = {"images": settings.images, "steps": settings.steps, "seconds": seconds,
                "bn_statistics_gap": gap}
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    data.train = ImageSet.of(images, None)
    data.source = f"synthetic ({len(images)} images from the teacher); test: {data.source}"
    data.notes = []
    info["pixels"] = pixels
    return info


def _statistics_gap(teacher: torch.nn.Module, images: torch.Tensor, data: Data) -> float:
    sample = images[:256]
    loader = BatchLoader(ImageSet.of(sample, None), data.mean, data.std, len(sample), train=False)
    return round(statistics_gap(teacher, loader.normalise(sample)), 4)


def save_synthetic(info: dict, folder: Path) -> None:
    """synthetic.npz (the images) and synthetic.json (what they cost) in the run folder."""
    np.savez(folder / SYNTHETIC, x=info["pixels"])
    atomic_write_text(folder / "synthetic.json", json.dumps(
        {k: v for k, v in info.items() if k != "pixels"}))
