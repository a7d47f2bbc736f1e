"""Image folders: train/ and test/ (or val/), each CLASS/ subfolders or plain images.

A split of class folders is labelled (classes numbered in sorted folder order,
as torchvision's ImageFolder does); a split that holds its images directly,
with no subfolders, has no labels, so a run on it reads none (``--labels
none``). Images are loaded into memory at the first training image's size.
"""

from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from recast.errors import RecastError

# (images uint8 N x C x H x W, labels or None for a split without labels)
Split = tuple[Tensor, Tensor | None]
_PLACES = "put images in train/CLASS/*.png and test/CLASS/*.png (or, without labels, " \
          "straight into train/ and test/)"


def read_image_folders(root: Path) -> tuple[Split, Split]:
    """The train and test splits under ``root``; one line names any folder at fault."""
    from torchvision import transforms

    test_dir = root / "test" if (root / "test").is_dir() else root / "val"
    train_classes, train_items = _contents(root / "train")
    size = min(_open(train_items[0][0]).size)
    to_tensor = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size),
                                    transforms.PILToTensor()])
    test_classes, test_items = _contents(test_dir)
    if train_classes and test_classes and test_classes != train_classes:
        raise RecastError(f"{test_dir} has classes {test_classes[:5]}... but train/ "
                          f"has {train_classes[:5]}...; use the same class folders")
    return (_load(train_items, bool(train_classes), to_tensor),
            _load(test_items, bool(test_classes), to_tensor))


def _contents(folder: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names and (image, class) pairs; no classes for a folder of plain images."""
    from torchvision import datasets

    if any(p.is_dir() for p in folder.iterdir()):
        try:
            found = datasets.ImageFolder(str(folder))
        except FileNotFoundError as exc:
            raise RecastError(f"{folder} has no class folders with images; {_PLACES}") from exc
        return found.classes, [(Path(path), target) for path, target in found.samples]
    images = [(p, -1) for p in sorted(folder.iterdir()) if _is_image(p)]
    if not images:
        raise RecastError(f"{folder} has no class folders with images and no images; "
                          f"{_PLACES}")
    return [], images


def _load(items: list[tuple[Path, int]], labelled: bool, to_tensor: Callable) -> Split:
    """The images of one split in ImageFolder's order, and their labels if it has any."""
    images = torch.stack([to_tensor(_open(path)) for path, _ in items])
    return images, torch.tensor([target for _, target in items]) if labelled else None


def _is_image(path: Path) -> bool:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return path.is_file() and path.name.lower().endswith(IMG_EXTENSIONS)


def _open(path: Path):
    """An RGB PIL image, as ImageFolder's default loader reads it."""
    from torchvision.datasets.folder import default_loader

    return default_loader(str(path))
