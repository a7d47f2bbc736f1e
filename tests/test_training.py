"""recast/training.py: the shared loops, evaluation and device choice."""

import copy

import pytest
import torch
from torch import nn

from recast.errors import RecastError
from recast.training import check_device, evaluate


def test_evaluate_leaves_a_frozen_teacher_in_eval_mode(vgg_teacher, loaders) -> None:
    frozen = nn.Sequential(copy.deepcopy(vgg_teacher).eval())
    wrapper = nn.Sequential(frozen).train()
    frozen.eval()
    evaluate(wrapper, loaders[1], torch.device("cpu"))
    assert wrapper.training and not any(m.training for m in frozen.modules())


@pytest.mark.parametrize("name", ["tpu", "gpu0", "cuda:x"])
def test_an_unknown_device_is_one_line(name) -> None:
    with pytest.raises(RecastError, match="--device"):
        check_device(name)
