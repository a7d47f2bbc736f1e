"""Data loading: good data loads unchanged, bad data is refused in one line naming the fix."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from recast.datasets import BatchLoader, ImageSet, load_data
from recast.errors import RecastError
from tests.conftest import SMALL


def _images(n: int = 6, shape: tuple[int, ...] = (32, 32, 3)) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, *shape), dtype=np.uint8)


def _folder(root: Path, x=None, y=None, test_x=None, test_y=None) -> Path:
    """train.npz and test.npz in ``root``: 6 RGB images of 3 classes unless told."""
    x = _images() if x is None else x
    y = np.arange(len(x)) % 3 if y is None else y
    np.savez(root / "train.npz", x=x, y=y)
    np.savez(root / "test.npz", x=x if test_x is None else test_x,
             y=y if test_y is None else test_y)
    return root


def _refused(root: Path, *words: str, **limits) -> str:
    """The one-line message refusing ``root``; it must contain each of ``words``."""
    with pytest.raises(RecastError) as caught:
        load_data(data_dir=root, **limits)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


# the good path


def test_real_sample_loads_with_no_notes() -> None:
    if not SMALL.is_dir():
        pytest.skip(f"{SMALL} is missing")
    data = load_data(data_dir=SMALL)
    assert (len(data.train), len(data.test), data.num_classes) == (2000, 1000, 10)
    assert data.train.images.is_contiguous() and data.notes == []


def test_demo_sample_gives_a_note_not_a_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_data()
    assert not [w for w in caught if issubclass(w.category, UserWarning)]
    assert len(data.train) == 2000 and data.num_classes == 10
    assert len(data.notes) == 1 and "demo sample" in data.notes[0]


# labels


def test_label_255_in_ten_classes_is_refused(tmp_path) -> None:
    y = np.arange(20) % 10
    y[:2] = 255
    _folder(tmp_path, x=_images(20), y=y, test_x=_images(10), test_y=np.arange(10))
    _refused(tmp_path, str(tmp_path), "labels 0..9 are followed by 255 (on 2 images)",
             "no image has label 10", "drop or renumber")


def test_negative_labels_are_refused(tmp_path) -> None:
    _folder(tmp_path, y=np.array([0, 1, 2, -1, 0, 1]))
    _refused(tmp_path, "found -1 (on 1 image) among the training images", "renumber")


def test_labels_counted_from_one_are_refused(tmp_path) -> None:
    _folder(tmp_path, y=np.arange(6) % 3 + 1)
    _refused(tmp_path, "start at 1, not 0", "y - 1")


def test_test_labels_outside_the_training_classes_are_refused(tmp_path) -> None:
    _folder(tmp_path, test_x=_images(4), test_y=np.array([0, 1, 3, 3]))
    _refused(tmp_path, "test labels 3 (on 2 images)", "3 training classes 0..2",
             "drop those test images")


def test_a_single_class_is_refused(tmp_path) -> None:
    _folder(tmp_path, y=np.zeros(6, np.int64))
    _refused(tmp_path, "one class", "at least 2 classes")


def test_float_labels_with_fractions_are_refused(tmp_path) -> None:
    _folder(tmp_path, y=np.array([0, 1, 2, 0.5, 1, 2]))
    _refused(tmp_path, "train.npz", "non-integer labels such as 0.5", "save them as integers")


def test_whole_number_float_labels_are_accepted(tmp_path) -> None:
    data = load_data(data_dir=_folder(tmp_path, y=np.array([0., 1., 2., 0., 1., 2.])))
    assert data.train.labels.dtype == torch.int64 and data.train.labels.tolist() == [0, 1, 2] * 2


def test_column_of_labels_is_accepted(tmp_path) -> None:
    data = load_data(data_dir=_folder(tmp_path, y=(np.arange(6) % 3).reshape(6, 1)))
    assert data.train.labels.shape == (6,) and data.num_classes == 3


def test_one_hot_labels_are_refused(tmp_path) -> None:
    _folder(tmp_path, y=np.eye(3)[np.arange(6) % 3])
    _refused(tmp_path, "y has shape (6, 3)", "y.argmax(1)")


def test_text_labels_are_refused(tmp_path) -> None:
    _folder(tmp_path, y=np.array(["cat", "dog", "cat", "dog", "cat", "dog"]))
    _refused(tmp_path, "not class numbers", "save y as integers")


def test_object_labels_are_refused_unread(tmp_path) -> None:
    _folder(tmp_path, y=np.array([0, 1, None, 0, 1, 2], dtype=object))
    _refused(tmp_path, "y holds Python objects", "integer class numbers")


# x and y


def test_x_and_y_of_different_lengths_are_refused(tmp_path) -> None:
    _folder(tmp_path, y=np.arange(5) % 3)
    _refused(tmp_path, str(tmp_path / "train.npz"), "x has 6 images but y has 5 labels",
             "one label per image")


def test_npz_without_x_is_refused(tmp_path) -> None:
    _folder(tmp_path)
    np.savez(tmp_path / "train.npz", images=_images(), y=np.arange(6) % 3)
    _refused(tmp_path, "train.npz has no 'x' (it holds 'images', 'y')",
             "np.savez(path, x=images, y=labels)")


def test_single_array_file_is_refused(tmp_path) -> None:
    _folder(tmp_path)
    with open(tmp_path / "train.npz", "wb") as handle:
        np.save(handle, _images())
    _refused(tmp_path, "holds a single array", "np.savez(path, x=images, y=labels)")


def test_truncated_npz_is_named_as_damaged(tmp_path) -> None:
    _folder(tmp_path)
    path = tmp_path / "train.npz"
    path.write_bytes(path.read_bytes()[:5000])
    _refused(tmp_path, f"{path} is damaged", "re-create or re-download it")


def test_file_that_is_not_an_npz_is_named_as_damaged(tmp_path) -> None:
    _folder(tmp_path)
    (tmp_path / "test.npz").write_text("not an archive")
    message = _refused(tmp_path, f"{tmp_path / 'test.npz'} is damaged or not an .npz archive",
                       "neither a zip archive nor a .npy array")
    assert "allow_pickle" not in message


def test_npz_with_a_corrupt_byte_is_named_as_damaged(tmp_path) -> None:
    _folder(tmp_path)
    path = tmp_path / "train.npz"
    data = bytearray(path.read_bytes())
    data[3000] ^= 0xFF  # inside x's pixels: the zip's CRC check catches it
    path.write_bytes(bytes(data))
    _refused(tmp_path, f"{path} is damaged", "Bad CRC-32", "re-create or re-download it")


def test_channels_first_npz_is_read_with_a_note(tmp_path) -> None:
    x = _images()
    (tmp_path / "nhwc").mkdir()
    (tmp_path / "nchw").mkdir()
    nhwc = load_data(data_dir=_folder(tmp_path / "nhwc", x=x))
    nchw = load_data(data_dir=_folder(tmp_path / "nchw", x=x.transpose(0, 3, 1, 2)))
    assert torch.equal(nchw.train.images, nhwc.train.images) and nchw.in_channels == 3
    assert len(nchw.notes) == 2 and "channels first" in nchw.notes[0] and nhwc.notes == []


def test_float_pixels_from_0_to_1_are_refused_with_the_conversion(tmp_path) -> None:
    _folder(tmp_path, x=_images().astype(np.float32) / 255)
    _refused(tmp_path, "x is float32 with values 0..1", "(x * 255).round().astype(np.uint8)")


def test_float_pixels_from_0_to_255_are_refused_with_the_conversion(tmp_path) -> None:
    _folder(tmp_path, x=_images().astype(np.float64))
    _refused(tmp_path, "x is float64 with values 0..255", "x.round().astype(np.uint8)")


def test_normalised_pixels_are_refused(tmp_path) -> None:
    _folder(tmp_path, x=_images().astype(np.float32) / 64 - 2)
    _refused(tmp_path, "not pixels 0..255", "uint8 0..255")


def test_x_of_wrong_rank_is_refused(tmp_path) -> None:
    _folder(tmp_path, x=_images().reshape(6, -1))
    _refused(tmp_path, "x has shape (6, 3072) (rank 2)", "N x H x W x C")


def test_train_and_test_images_of_different_sizes_are_refused(tmp_path) -> None:
    _folder(tmp_path, test_x=_images(6, (28, 28, 3)))
    _refused(tmp_path, "test images are 28x28, 3 channels but training images are 32x32")


def test_files_of_one_split_with_different_sizes_are_refused(tmp_path) -> None:
    _folder(tmp_path)
    np.savez(tmp_path / "train_2.npz", x=_images(6, (28, 28)), y=np.arange(6) % 3)
    _refused(tmp_path, "train_2.npz: images are 28x28, 1 channel", "one image size")


# the folder


def test_folder_without_a_test_file_is_refused(tmp_path) -> None:
    np.savez(tmp_path / "cifar_train.npz", x=_images(), y=np.arange(6) % 3)
    _refused(tmp_path, "no .npz file whose name contains 'test'", "cifar10_test.npz")


def test_file_named_for_both_splits_is_refused(tmp_path) -> None:
    _folder(tmp_path)
    np.savez(tmp_path / "train_test.npz", x=_images(), y=np.arange(6) % 3)
    _refused(tmp_path, "both 'train' and 'test'", "rename it")


def test_npz_named_for_neither_split_gives_a_note(tmp_path) -> None:
    _folder(tmp_path)
    np.savez(tmp_path / "val.npz", x=_images(), y=np.arange(6) % 3)
    assert load_data(data_dir=tmp_path).notes == [
        f"ignored val.npz in {tmp_path}: recast reads only .npz files whose names contain "
        f"'train' or 'test'"]


# limits and batches


@pytest.mark.parametrize("flag", ["limit_train", "limit_test"])
@pytest.mark.parametrize("n", [0, -3])
def test_limit_below_one_is_refused(tmp_path, flag, n) -> None:
    name = "--" + flag.replace("_", "-")
    _refused(_folder(tmp_path), f"{name} must be at least 1, got {n}", "leave it out",
             **{flag: n})


def test_imageset_limit_zero_is_refused_not_read_as_no_limit() -> None:
    images = ImageSet(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.arange(4))
    assert images.limit(None) is images and len(images.limit(2)) == 2
    with pytest.raises(RecastError, match="at least 1 image, got 0; pass None"):
        images.limit(0)


def test_limit_above_the_set_size_gives_a_note(tmp_path) -> None:
    data = load_data(data_dir=_folder(tmp_path), limit_test=50)
    assert data.notes == ["--limit-test 50 is more than the 6 test images; all 6 are used"]


def test_limit_that_drops_classes_gives_a_note(tmp_path) -> None:
    data = load_data(data_dir=_folder(tmp_path, y=np.array([0, 0, 0, 1, 1, 2])), limit_train=3)
    assert data.notes == ["--limit-train 3 keeps training images of only 1 of the 3 classes; "
                          "the model never sees the other 2"]


@pytest.mark.parametrize("size", [0, -1])
def test_batch_size_below_one_is_refused(size) -> None:
    images = ImageSet(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.arange(4))
    with pytest.raises(RecastError, match=f"--batch-size must be at least 1, got {size}; use"):
        BatchLoader(images, (0.5,) * 3, (0.25,) * 3, batch_size=size)


def test_batch_loader_has_no_dataset_size() -> None:
    assert not hasattr(BatchLoader, "dataset_size")


# data without labels


def test_npz_without_y_is_a_set_without_labels(tmp_path) -> None:
    np.savez(tmp_path / "train.npz", x=_images())
    np.savez(tmp_path / "test.npz", x=_images(4), y=np.array([0, 1, 2, 1]))
    data = load_data(data_dir=tmp_path, limit_train=3)
    assert not data.train.labelled and data.test.labelled and not data.labelled
    assert data.train.labels.tolist() == [-1, -1, -1] and data.num_classes == 0
    assert data.notes == []  # no "keeps only some classes" note: there are no classes


def test_labelled_training_set_with_test_without_y(tmp_path) -> None:
    np.savez(tmp_path / "train.npz", x=_images(), y=np.arange(6) % 3)
    np.savez(tmp_path / "test.npz", x=_images(4))
    data = load_data(data_dir=tmp_path)
    assert data.train.labelled and not data.test.labelled and data.num_classes == 3


def test_a_split_with_y_in_only_some_files_is_refused(tmp_path) -> None:
    _folder(tmp_path)
    np.savez(tmp_path / "train_2.npz", x=_images())
    _refused(tmp_path, "train.npz has labels (y) but", "train_2.npz has none",
             "in none of them")


def test_image_folder_of_plain_images_has_no_labels(tmp_path) -> None:
    from PIL import Image

    pixels = _images(6, (12, 10, 3))
    (tmp_path / "train").mkdir()
    for i in range(4):
        Image.fromarray(pixels[i]).save(tmp_path / "train" / f"{i}.png")
    for i, name in ((4, "cat"), (5, "dog")):
        (tmp_path / "test" / name).mkdir(parents=True)
        Image.fromarray(pixels[i]).save(tmp_path / "test" / name / "a.png")
    data = load_data(data_dir=tmp_path)
    assert not data.train.labelled and len(data.train) == 4 and data.image_size == 10
    assert data.test.labels.tolist() == [0, 1] and data.num_classes == 0
