"""Data folders and teacher checkpoints: what loads, and what is refused."""

import numpy as np
import pytest
import torch

from recast.datasets import BatchLoader, load_data
from recast.errors import RecastError
from recast.models import build_model
from recast.teacher import load_teacher
from tests.conftest import SMALL


def test_npz_folder_gives_shapes_and_classes() -> None:
    data = load_data(data_dir=SMALL)
    assert (len(data.train), len(data.test), data.num_classes) == (2000, 1000, 10)
    assert (data.in_channels, data.image_size) == (3, 32)


def test_limits_take_class_balanced_prefixes() -> None:
    data = load_data(data_dir=SMALL, limit_train=100, limit_test=50)
    assert len(data.train) == 100 and torch.bincount(data.train.labels).tolist() == [10] * 10


def test_grayscale_npz_builds_one_channel_models(tmp_path) -> None:
    x = np.random.randint(0, 255, (40, 28, 28), dtype=np.uint8)
    y = np.arange(40) % 4
    np.savez(tmp_path / "digits_train.npz", x=x, y=y)
    np.savez(tmp_path / "digits_test.npz", x=x[:8], y=y[:8])
    data = load_data(data_dir=tmp_path)
    assert (data.in_channels, data.num_classes, data.image_size) == (1, 4, 28)
    batch, _ = next(iter(BatchLoader(data.train, data.mean, data.std, 8)))
    assert batch.shape == (8, 1, 28, 28)


def test_image_folder_layout(tmp_path) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for label in ("cat", "dog"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((16, 16, 3), i * 40, np.uint8)).save(folder / f"{i}.png")
    data = load_data(data_dir=tmp_path)
    assert (len(data.train), len(data.test), data.num_classes, data.image_size) == (6, 6, 2, 16)


def test_augmentation_keeps_shape_and_is_seeded() -> None:
    data = load_data(data_dir=SMALL, limit_train=64)
    a = next(iter(BatchLoader(data.train, data.mean, data.std, 64, seed=1)))[0]
    b = next(iter(BatchLoader(data.train, data.mean, data.std, 64, seed=1)))[0]
    assert a.shape == (64, 3, 32, 32) and torch.equal(a, b)


def test_missing_data_folder_says_what_to_pass(tmp_path) -> None:
    with pytest.raises(RecastError, match="does not exist"):
        load_data(data_dir=tmp_path / "nope")
    with pytest.raises(RecastError, match="holds no data recast can read"):
        load_data(data_dir=tmp_path)


def test_demo_sample_is_used_without_data() -> None:
    data = load_data()
    assert "demo sample" in data.notes[0]
    assert len(data.train) == 2000 and data.num_classes == 10


def test_pt_teacher_loads_with_weights_only(tmp_path) -> None:
    model = build_model("vgg11", width=0.25)
    torch.save(model.state_dict(), tmp_path / "t.pt")
    other = load_teacher(build_model("vgg11", width=0.25), tmp_path / "t.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                   other.state_dict().values()))


def test_teacher_of_another_architecture_names_the_keys(tmp_path) -> None:
    torch.save(build_model("resnet20").state_dict(), tmp_path / "r.pt")
    with pytest.raises(RecastError, match="not a state dict of this model.*missing"):
        load_teacher(build_model("vgg11", width=0.25), tmp_path / "r.pt")


def test_pickle_that_runs_code_is_refused(tmp_path) -> None:
    import os
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump(Payload(), handle)
    with pytest.raises(RecastError, match="refused unread|cannot be loaded safely"):
        load_teacher(build_model("vgg11", width=0.25), tmp_path / "evil.pt")
    assert not marker.exists()
