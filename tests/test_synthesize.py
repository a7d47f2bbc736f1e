"""recast/synthesize.py: a data-free transfer set from the teacher's BN statistics."""

import numpy as np
import pytest
import torch
from torch import nn

from recast.datasets import CIFAR_STATS
from recast.errors import RecastError
from recast.models import build_model
from recast.synthesize import SynthesisSettings, statistics_gap, synthesize

MEAN, STD = CIFAR_STATS["cifar10"]


def _normalised(pixels: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def test_synthesised_images_match_the_teachers_statistics_better_than_noise(vgg_teacher) -> None:
    settings = SynthesisSettings(images=32, steps=30, batch_size=32, lr=0.1)
    pixels, classes = synthesize(vgg_teacher, (3, 32, 32), 10, MEAN, STD, settings)
    assert pixels.shape == (32, 32, 32, 3) and pixels.dtype == np.uint8
    assert classes.shape == (32,) and classes.max() < 10
    noise = np.random.default_rng(0).integers(0, 256, pixels.shape, dtype=np.uint8)
    assert statistics_gap(vgg_teacher, _normalised(pixels)) < \
        statistics_gap(vgg_teacher, _normalised(noise))


def test_the_same_seed_gives_the_same_images() -> None:
    teacher = build_model("vgg11", width=0.125).eval()
    settings = SynthesisSettings(images=4, steps=3, batch_size=4)
    first, _ = synthesize(teacher, (3, 32, 32), 10, MEAN, STD, settings)
    again, _ = synthesize(teacher, (3, 32, 32), 10, MEAN, STD, settings)
    assert np.array_equal(first, again)


def test_a_teacher_without_batch_norm_is_refused() -> None:
    teacher = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                            nn.Linear(4, 10))
    with pytest.raises(RecastError, match="no BatchNorm layers.*--data-dir"):
        synthesize(teacher, (3, 32, 32), 10, MEAN, STD, SynthesisSettings(images=2, steps=1))


def test_synthesis_leaves_the_teacher_unchanged() -> None:
    teacher = build_model("vgg11", width=0.125).eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    synthesize(teacher, (3, 32, 32), 10, MEAN, STD, SynthesisSettings(images=2, steps=2))
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert not any(h for m in teacher.modules() for h in m._forward_hooks.values())
