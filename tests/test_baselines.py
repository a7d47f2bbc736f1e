"""recast/baselines.py: the methods recasting is compared against."""

import copy

import pytest
import torch

from recast.baselines import BASELINES, fresh_student, train_student
from recast.errors import RecastError
from recast.losses import LOSSES
from recast.plan import make_plan
from recast.progress import Progress
from recast.walker import walk


def test_every_baseline_names_a_registered_loss() -> None:
    assert set(BASELINES.values()) <= set(LOSSES)


def test_a_fresh_student_shares_no_weight_with_the_teacher(vgg_teacher) -> None:
    plan = make_plan(walk(vgg_teacher), "conv", 1.0)
    student = fresh_student(plan)
    teacher_first = next(vgg_teacher.parameters())
    assert not torch.equal(next(student.parameters()), teacher_first)


def test_an_unknown_method_names_the_known_ones(vgg_teacher, loaders) -> None:
    with pytest.raises(RecastError, match="kd, kd-mse, scratch"):
        train_student("recast", torch.nn.Identity(), copy.deepcopy(vgg_teacher), *loaders, 0.1,
                      torch.device("cpu"), Progress(quiet=True))


def test_scratch_trains_without_the_teacher(vgg_teacher, loaders) -> None:
    vgg_teacher = copy.deepcopy(vgg_teacher)  # train_student freezes the teacher it is given
    calls = []
    handle = vgg_teacher.register_forward_hook(lambda *_: calls.append(1))
    plan = make_plan(walk(vgg_teacher), "conv", 0.5)
    result = train_student("scratch", fresh_student(plan), vgg_teacher, *loaders,
                           2 / len(loaders[0]), torch.device("cpu"), Progress(quiet=True))
    handle.remove()
    assert not calls and result["images"] == 2 * 64


def test_the_hint_baseline_learns_from_the_teacher_s_blocks(vgg_teacher, loaders) -> None:
    """--method hint: CE plus hints from random weights, the teacher as the plan's chain
    (a transformation keeps widths, so every block has the teacher's shape)."""
    from recast.baselines import teacher_chain

    teacher = copy.deepcopy(vgg_teacher)
    plan = make_plan(walk(teacher), "conv", 1.0)
    chain = teacher_chain(plan)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(chain.eval()(x), teacher.eval()(x), atol=1e-5)
    calls = []
    handle = chain[1].register_forward_hook(lambda *_: calls.append(1))
    result = train_student("hint", fresh_student(plan), chain, *loaders, 2 / len(loaders[0]),
                           torch.device("cpu"), Progress(quiet=True))
    handle.remove()
    assert len(calls) >= 2 and result["images"] == 2 * 64
