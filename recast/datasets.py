"""Training and test data: CIFAR by name, or a local folder in three layouts.

Labels are optional in local folders (an npz without y, an image folder of
plain images): such a split is held with every label -1 and ``labelled``
False, so anything that did read one would fail rather than learn from it.

Small image sets (CIFAR-size) are held in memory as uint8 tensors and
augmented a batch at a time with tensor ops, so a 2-core CPU spends no time on
per-image PIL transforms or worker processes (not benchmarked against them).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from recast.data_checks import check_not_negative, class_count, describe_shape, \
    read_npz_files, split_files
from recast.errors import RecastError
from recast.folders import read_image_folders
from recast.progress import Progress

DEMO_DIR = Path(__file__).parent / "data" / "demo"
CACHE_DIR = Path.home() / ".cache" / "recast" / "datasets"
DEMO_NOTE = ("no --dataset or --data-dir given, so recast uses the CIFAR-10 demo sample inside "
             "the package (2,000 training and 500 test images): results are demo-sized")
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


UNLABELLED = -1  # the label every image of a split without labels carries


@dataclass
class ImageSet:
    """Images as uint8 NCHW plus int64 labels (all UNLABELLED if ``labelled`` is False)."""

    images: Tensor
    labels: Tensor
    labelled: bool = True

    @classmethod
    def of(cls, images: Tensor, labels: Tensor | None) -> "ImageSet":
        """The set; ``labels`` None means the images have none."""
        if labels is None:
            return cls(images, torch.full((len(images),), UNLABELLED, dtype=torch.int64), False)
        return cls(images, labels)

    def without_labels(self) -> "ImageSet":
        """The same images with their labels dropped: a run that must read none."""
        return ImageSet.of(self.images, None)

    def __len__(self) -> int:
        return len(self.labels)

    def limit(self, n: int | None) -> "ImageSet":
        """The first ``n`` images (CIFAR files are class-balanced by prefix); None keeps all.

        0 or a negative ``n`` is refused, not read as "no limit" or "all but n".
        """
        if n is not None and n < 1:
            raise RecastError(f"a limit must be at least 1 image, got {n}; pass None for no limit")
        if n is None or n >= len(self):
            return self
        return ImageSet(self.images[:n], self.labels[:n], self.labelled)


@dataclass
class Data:
    """A train/test pair and what a model must fit: channels, size, classes.

    ``notes`` are sentences the user should read but that stop nothing (the
    demo sample is in use, a file was read as channels first, a limit keeps
    fewer classes); the CLI prints each as ``recast: note: ...``.
    """

    train: ImageSet
    test: ImageSet
    num_classes: int  # 0 when the training images have no labels: the teacher says
    source: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    notes: list[str] = field(default_factory=list)
    test_truth: str = "labels"  # "teacher": test labels are the teacher's predictions

    @property
    def labelled(self) -> bool:
        """Whether both splits have labels."""
        return self.train.labelled and self.test.labelled

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])


class BatchLoader:
    """Shuffled, augmented, normalised batches from an in-memory ImageSet.

    ``augment`` applies random crop with 4-pixel zero padding and horizontal
    flips; iteration order comes from ``generator`` so a seeded run repeats.
    A ``batch_size`` below 1 is refused here so no caller divides by zero.
    """

    def __init__(self, data: ImageSet, mean: tuple[float, ...], std: tuple[float, ...],
                 batch_size: int = 128, train: bool = True, seed: int = 0) -> None:
        if batch_size < 1:
            raise RecastError(f"--batch-size must be at least 1, got {batch_size}; "
                              f"use e.g. --batch-size 128")
        self.data = data
        self.batch_size = batch_size
        self.train = train
        self.generator = torch.Generator().manual_seed(seed)
        channels = data.images.shape[1]
        self.mean = torch.tensor(mean[:channels]).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std[:channels]).view(1, -1, 1, 1) * 255

    def __len__(self) -> int:
        return (len(self.data) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.data)
        order = torch.randperm(n, generator=self.generator) if self.train else torch.arange(n)
        for start in range(0, n, self.batch_size):
            index = order[start:start + self.batch_size]
            images = self.data.images[index].float()
            if self.train:
                images = self._augment(images)
            yield self.normalise(images), self.data.labels[index]

    def normalise(self, images: Tensor) -> Tensor:
        """Pixels (uint8 or float 0..255) as the model reads them."""
        return (images.float() - self.mean) / self.std

    def _augment(self, images: Tensor) -> Tensor:
        n, _, h, w = images.shape
        padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
        dy = torch.randint(0, 9, (n,), generator=self.generator)
        dx = torch.randint(0, 9, (n,), generator=self.generator)
        rows = (dy.view(n, 1) + torch.arange(h).view(1, h))  # n x h
        cols = (dx.view(n, 1) + torch.arange(w).view(1, w))  # n x w
        batch = torch.arange(n).view(n, 1, 1)
        crops = padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]
        crops = crops.permute(0, 3, 1, 2)
        flip = torch.rand(n, generator=self.generator) < 0.5
        crops[flip] = crops[flip].flip(-1)
        return crops.contiguous()


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units (std at least 1e-3):
    the normalisation of data that names no known data set."""
    pixels = images.float() / 255
    return (tuple(pixels.mean(dim=(0, 2, 3)).tolist()),
            tuple(pixels.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()))


def load_data(dataset: str | None = None, data_dir: str | Path | None = None,
              limit_train: int | None = None, limit_test: int | None = None) -> Data:
    """Data from ``data_dir`` (any layout), a named dataset, or the demo sample.

    Bad data is refused here, before any training, with a RecastError naming
    the fix (data_checks lists what is converted and what is refused); what
    the user should know but need not fix is added to ``Data.notes``.
    """
    for flag, n in (("--limit-train", limit_train), ("--limit-test", limit_test)):
        if n is not None and n < 1:
            raise RecastError(f"{flag} must be at least 1, got {n}; leave it out to use "
                              f"every image")
    if data_dir is not None:
        data = _load_dir(Path(data_dir), dataset)
    elif dataset is not None:
        data = _load_named(dataset)
    else:
        data = _load_npz_dir(DEMO_DIR, "cifar10 demo sample", "cifar10")
        data.notes.insert(0, DEMO_NOTE)
    data.train = _limit(data.train, limit_train, "--limit-train", "training", data.notes)
    data.test = _limit(data.test, limit_test, "--limit-test", "test", data.notes)
    lost = 0 if limit_train is None or not data.train.labelled else \
        data.num_classes - len(data.train.labels.unique())
    if lost:
        data.notes.append(f"--limit-train {limit_train} keeps training images of only "
                          f"{data.num_classes - lost} of the {data.num_classes} classes; "
                          f"the model never sees the other {lost}")
    return data


def load_job_data(dataset: str | None, data_dir: str | None, limit_train: int | None,
                  limit_test: int | None, progress: Progress) -> Data:
    """The data of a CLI job, its notes (demo sample, layout read) shown as note lines."""
    data = load_data(dataset if dataset != "imagenet" else None, data_dir, limit_train,
                     limit_test)
    for note in data.notes:
        progress.log(f"recast: note: {note}")
    return data


def _limit(images: ImageSet, n: int | None, flag: str, name: str,
           notes: list[str]) -> ImageSet:
    if n is not None and n > len(images):
        notes.append(f"{flag} {n} is more than the {len(images)} {name} images; all "
                     f"{len(images)} are used")
    return images.limit(n)


def _load_named(dataset: str) -> Data:
    if dataset not in CIFAR_STATS:
        raise RecastError(f"unknown --dataset {dataset!r}; use cifar10 or cifar100, "
                          f"or --data-dir for your own data")
    root = CACHE_DIR / dataset
    try:
        return _load_torchvision_cifar(root, dataset, download=True)
    except RecastError:
        raise
    except Exception as exc:
        raise RecastError(
            f"could not download {dataset} to {root} ({type(exc).__name__}); with no "
            f"network pass local data: --data-dir DIR (CIFAR python folder, "
            f"ImageFolder train/ and test/, or .npz files with x and y)"
        ) from exc


def _load_dir(root: Path, dataset: str | None) -> Data:
    if not root.is_dir():
        raise RecastError(f"--data-dir {root} does not exist; point it at a folder of "
                          f"data (npz files, CIFAR python folder, or train/ and test/)")
    if list(root.glob("*.npz")):
        return _load_npz_dir(root, str(root), dataset)
    for name in ("cifar10", "cifar100"):
        if _has_cifar_python(root, name):
            return _load_torchvision_cifar(root, name, download=False)
    if (root / "train").is_dir() and ((root / "test").is_dir() or (root / "val").is_dir()):
        return _load_image_folder(root)
    raise RecastError(
        f"--data-dir {root} holds no data recast can read: expected .npz files "
        f"(x uint8 NHWC, y labels; names with 'train' and 'test'), a CIFAR python "
        f"folder (cifar-10-batches-py), or train/ and test/ (or val/) image folders"
    )


def _load_npz_dir(root: Path, source: str, dataset: str | None) -> Data:
    notes: list[str] = []
    splits = split_files(root, notes)
    train, test = (ImageSet.of(*read_npz_files(splits[part], notes))
                   for part in ("train", "test"))
    return _make_data(train, test, source, dataset, notes)


def _make_data(train: ImageSet, test: ImageSet, source: str, dataset: str | None,
               notes: list[str] | None = None) -> Data:
    for name, images in (("training", train), ("test", test)):
        if len(images) == 0:
            raise RecastError(f"{source}: the {name} set has 0 images; give it at least one "
                              f"(or use --limit-train/--limit-test on a larger set)")
    if train.images.shape[1:] != test.images.shape[1:]:
        raise RecastError(f"{source}: test images are {describe_shape(test.images.shape)} but "
                          f"training images are {describe_shape(train.images.shape)}; give "
                          f"both sets one image size and channel count")
    if train.labelled:
        test_labels = test.labels if test.labelled else test.labels[:0]  # none to check
        classes = class_count(train.labels, test_labels, source)
    else:
        classes = 0  # no labels to count: the class count comes from the teacher
        if test.labelled:
            check_not_negative(test.labels, "test", source)
    if dataset in CIFAR_STATS:
        mean, std = CIFAR_STATS[dataset]
    else:
        mean, std = channel_stats(train.images[:5000])
    return Data(train, test, classes, source, tuple(mean), tuple(std), notes or [])


def _has_cifar_python(root: Path, name: str) -> bool:
    folder = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[name]
    return (root / folder).is_dir()


def _load_torchvision_cifar(root: Path, name: str, download: bool) -> Data:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    sets = [cls(str(root), train=t, download=download) for t in (True, False)]
    train, test = (ImageSet(torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous(),
                            torch.tensor(s.targets)) for s in sets)
    return _make_data(train, test, f"{name} ({root})", name)


def _load_image_folder(root: Path) -> Data:
    """ImageFolder train/ and test/ (or val/), loaded into memory at one size."""
    train, test = read_image_folders(root)
    return _make_data(ImageSet.of(*train), ImageSet.of(*test), str(root), None)
