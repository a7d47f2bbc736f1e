"""Bad data refused before any training, each time in one line naming the fix.

Most of what goes wrong arrives in .npz files (damaged archives, missing
arrays, float pixels, channels-first arrays, x and y of different lengths), so
the .npz reader lives here; ``class_count`` checks the labels of every layout.

What is converted and what is refused:

- x must be uint8: recast converts no other pixel type, because float 0..1,
  float 0..255 and normalised arrays cannot be told apart safely; the message
  gives the exact numpy conversion for the values it found.
- x of shape N x C x H x W (C in 1, 3, 4 and a last axis that is not a channel
  count) is read as channels first and a note says so; N x H x W is one channel.
- y may be any integer type, bool, or float whose values are all whole numbers
  (3.0 is class 3 and nothing is lost); fractional, NaN or text labels are
  refused, as is a y of shape other than (N,) or (N, 1).
- y may be left out: a split whose files hold no y has no labels (a run on it
  reads none, ``--labels none``); a split with y in some files and not in
  others is refused, since which images are unlabelled would be a guess.
"""

import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from recast.errors import RecastError

CHANNEL_COUNTS = (1, 3, 4)  # the channel counts an image axis can hold (gray, RGB, RGBA)
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, struct.error, OSError)
_SAVE = "np.savez(path, x=images, y=labels)"


def split_files(root: Path, notes: list[str]) -> dict[str, list[Path]]:
    """The .npz files of each split, by name; a file named for both is refused."""
    files = sorted(root.glob("*.npz"))
    for path in files:
        if "train" in path.name and "test" in path.name:
            raise RecastError(f"{path} has both 'train' and 'test' in its name; rename it so "
                              f"it names one split, e.g. cifar10_train.npz")
    ignored = [p.name for p in files if "train" not in p.name and "test" not in p.name]
    if ignored:
        notes.append(f"ignored {', '.join(ignored)} in {root}: recast reads only .npz files "
                     f"whose names contain 'train' or 'test'")
    splits = {part: [p for p in files if part in p.name] for part in ("train", "test")}
    for part, chosen in splits.items():
        if not chosen:
            raise RecastError(f"{root} has no .npz file whose name contains {part!r}; "
                              f"name files like cifar10_{part}.npz")
    return splits


def read_npz_files(files: list[Path], notes: list[str]) -> tuple[Tensor, Tensor | None]:
    """Images as uint8 N x C x H x W and int64 labels (None: the files hold no y),
    the files joined in order."""
    xs, ys = [], []
    for path in files:
        x, y = _read_file(path, notes)
        if xs and x.shape[1:] != xs[0].shape[1:]:
            raise RecastError(f"{path}: images are {describe_shape(x.shape)} but {files[0]} "
                              f"has {describe_shape(xs[0].shape)}; give every file one "
                              f"image size and channel count")
        if ys and (y is None) != (ys[0] is None):
            with_y, without = (files[0], path) if y is None else (path, files[0])
            raise RecastError(f"{with_y} has labels (y) but {without} has none; save y in "
                              f"every file of a split, or in none of them for data "
                              f"without labels")
        xs.append(x)
        ys.append(y)
    images = np.ascontiguousarray(np.concatenate(xs))  # concatenate keeps a transposed layout
    labels = None if ys[0] is None else torch.from_numpy(np.concatenate(ys))
    return torch.from_numpy(images), labels


def describe_shape(shape: tuple[int, ...]) -> str:
    """'32x32, 3 channels' for an N x C x H x W shape."""
    return f"{shape[2]}x{shape[3]}, {shape[1]} channel{'s' if shape[1] != 1 else ''}"


def _read_file(path: Path, notes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    x, y = _arrays(path)
    if x.ndim not in (3, 4):
        raise RecastError(f"{path}: x has shape {x.shape} (rank {x.ndim}); give images as "
                          f"N x H x W x C, or N x H x W for one channel")
    _check_pixels(x, path)
    return _channels_first(x, path, notes), None if y is None else _labels(y, path, len(x))


def _arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        archive = np.load(path)
    except ValueError as exc:  # numpy's text here suggests unpickling: not for us
        raise _damaged(path, exc, "neither a zip archive nor a .npy array") from exc
    except _DAMAGED as exc:
        raise _damaged(path, exc) from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise RecastError(f"{path} holds a single array, not x and y; save both: {_SAVE}")
    with archive:
        if "x" not in archive.files:  # y is optional: without it the images are unlabelled
            held = ", ".join(repr(k) for k in archive.files) or "no arrays"
            raise RecastError(f"{path} has no 'x' (it holds {held}); save images as x and "
                              f"labels, if any, as y: {_SAVE}")
        arrays = []
        for key in [k for k in ("x", "y") if k in archive.files]:
            try:
                arrays.append(archive[key])
            except _DAMAGED as exc:
                if isinstance(exc, ValueError) and "allow_pickle" in str(exc):
                    raise RecastError(f"{path}: {key} holds Python objects, which recast does "
                                      f"not unpickle; save x as uint8 pixels and y as integer "
                                      f"class numbers") from exc
                raise _damaged(path, exc) from exc
    return arrays[0], arrays[1] if len(arrays) > 1 else None


def _damaged(path: Path, exc: Exception, reason: str | None = None) -> RecastError:
    reason = reason or (str(exc).strip().splitlines() or [""])[0]
    return RecastError(f"{path} is damaged or not an .npz archive ({type(exc).__name__}: "
                       f"{reason}); re-create or re-download it")


def _check_pixels(x: np.ndarray, path: Path) -> None:
    """Refuse non-uint8 pixels, with the conversion that fits the values found."""
    if x.dtype == np.uint8:
        return
    if x.dtype.kind not in "biuf":
        raise RecastError(f"{path}: x holds {x.dtype} values, not pixels; save the images as "
                          f"uint8 0..255")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise RecastError(f"{path}: x ({x.dtype}) holds NaN or infinite values; save the "
                          f"images as uint8 pixels 0..255")
    low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    found = f"{path}: x is {x.dtype} with values {low:g}..{high:g}"
    if low < 0 or high > 255:
        raise RecastError(f"{found}, not pixels 0..255 (normalised?); save the raw images as "
                          f"uint8 0..255 (recast normalises them itself)")
    if x.dtype.kind in "bf" and high <= 1:
        fix = "(x * 255).round().astype(np.uint8)"
    else:
        fix = "x.round().astype(np.uint8)" if x.dtype.kind == "f" else "x.astype(np.uint8)"
    raise RecastError(f"{found}, but recast reads only uint8 pixels and converts nothing; "
                      f"save x = {fix}")


def _channels_first(x: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    """N x C x H x W, from N x H x W x C, N x H x W, or an N x C x H x W file (noted)."""
    if x.ndim == 3:
        return x[:, None]
    if x.shape[1] in CHANNEL_COUNTS and x.shape[3] not in CHANNEL_COUNTS:
        notes.append(f"read x in {path} (shape {x.shape}) as channels first, N x C x H x W, "
                     f"not the usual N x H x W x C")
        return x
    return x.transpose(0, 3, 1, 2)


def _labels(y: np.ndarray, path: Path, images: int) -> np.ndarray:
    """int64 class numbers, one per image; whole-number floats are accepted."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise RecastError(f"{path}: y has shape {y.shape}; give one class number per image, "
                          f"shape (N,) (for one-hot rows save y.argmax(1))")
    if len(y) != images:
        raise RecastError(f"{path}: x has {images} images but y has {len(y)} labels; save "
                          f"exactly one label per image")
    if y.dtype.kind in "biu":
        return y.astype(np.int64)
    if y.dtype.kind != "f":
        raise RecastError(f"{path}: y holds {y.dtype} values, not class numbers; map each "
                          f"class to 0..K-1 and save y as integers")
    bad = y[~(np.isfinite(y) & (y == np.round(y)))]
    if bad.size:
        raise RecastError(f"{path}: y holds non-integer labels such as {bad[0]:g} ({bad.size} "
                          f"of {len(y)}); labels are class numbers 0..K-1: save them as "
                          f"integers")
    return y.astype(np.int64)


def class_count(train: Tensor, test: Tensor, source: str) -> int:
    """K, from labels that must be 0..K-1: each class has training images, test no others.

    A gap (0..9 plus 255) is refused rather than read as 256 classes: an
    honest class count is one the training images actually cover.
    """
    for name, labels in (("training", train), ("test", test)):
        check_not_negative(labels, name, source)
    values = torch.unique(train)
    if int(values[0]) != 0:
        raise RecastError(f"{source}: training labels start at {int(values[0])}, not 0; "
                          f"renumber the classes 0..K-1 (for labels counted from 1, save y - 1)")
    classes = int((values == torch.arange(len(values))).sum())  # the gapless run 0..K-1
    if classes < len(values):
        raise RecastError(f"{source}: training labels {_span(classes)} are followed by "
                          f"{_counted(train[train >= classes])} after a gap (no image has label "
                          f"{classes}); labels must be 0..K-1 without gaps: drop or renumber "
                          f"the images with those labels")
    if classes < 2:
        raise RecastError(f"{source}: every training image has label 0, so there is one "
                          f"class; a classifier needs training images of at least 2 classes")
    stray = test[test >= classes]
    if len(stray):
        raise RecastError(f"{source}: test labels {_counted(stray)} are not among the {classes} "
                          f"training classes {_span(classes)}; drop those test images or add "
                          f"training images of those classes")
    return classes


def check_not_negative(labels: Tensor, name: str, source: str) -> None:
    """Refuse labels below 0: class numbers start at 0 (``name``: training or test)."""
    if len(labels) and int(labels.min()) < 0:
        raise RecastError(f"{source}: labels must be class numbers 0..K-1, found "
                          f"{_counted(labels[labels < 0])} among the {name} images; "
                          f"renumber the classes from 0")


def _span(classes: int) -> str:
    return "0" if classes == 1 else f"0..{classes - 1}"


def _counted(labels: Tensor, shown: int = 5) -> str:
    """'255 (on 12 images), 300 (on 1 image)': the values and how many images carry each."""
    values, counts = torch.unique(labels, return_counts=True)
    parts = [f"{int(v)} (on {int(c)} image{'s' if int(c) != 1 else ''})"
             for v, c in zip(values[:shown], counts[:shown])]
    more = f" and {len(values) - shown} more values" if len(values) > shown else ""
    return ", ".join(parts) + more
