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


class _Counted(torch.nn.Module):
    """Counts the forwards of the module it wraps in the class, so the copy a baseline
    makes of its teacher still counts."""

    calls: list[int] = []

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _Counted.calls.append(1)
        return self.inner(x)


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


@pytest.mark.parametrize("method, runs_teacher", [("scratch", False), ("kd", True)])
def test_only_a_distilling_baseline_runs_the_teacher(vgg_teacher, loaders, method,
                                                     runs_teacher) -> None:
    plan = make_plan(walk(vgg_teacher), "conv", 0.5)
    _Counted.calls.clear()  # train_student runs a copy: the count is the class's
    result = train_student(method, fresh_student(plan), _Counted(vgg_teacher), *loaders,
                           2 / len(loaders[0]), torch.device("cpu"), Progress(quiet=True))
    assert bool(_Counted.calls) == runs_teacher and result["images"] == 2 * 64


def test_the_hint_baseline_learns_from_the_teacher_s_blocks(vgg_teacher, loaders) -> None:
    """--method hint: CE plus hints from random weights, the teacher as the plan's chain
    (a transformation keeps widths, so every block has the teacher's shape)."""
    from recast.baselines import teacher_chain

    teacher = copy.deepcopy(vgg_teacher)
    plan = make_plan(walk(teacher), "conv", 1.0)
    chain = teacher_chain(plan)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(chain.eval()(x), teacher.eval()(x), atol=1e-5)
    chain[1] = _Counted(chain[1])
    _Counted.calls.clear()
    result = train_student("hint", fresh_student(plan), chain, *loaders, 2 / len(loaders[0]),
                           torch.device("cpu"), Progress(quiet=True))
    assert len(_Counted.calls) >= 2 and result["images"] == 2 * 64


@pytest.mark.parametrize("model, teacher_width, target, width, expected", [
    ("vgg11", 0.25, "conv", 1.0, 8),  # a transformation keeps every width
    ("vgg11", 0.25, "conv", 0.5, 0),
    ("resnet20", 0.25, "conv", 0.5, 1),  # the kept stem
    ("densenet_bc_40_12", 0.25, "basic", 0.4, 3),  # the stem and both transitions
])
def test_hint_blocks_are_the_blocks_the_hint_loss_compares(model, teacher_width, target,
                                                           width, expected) -> None:
    """The plan's list is what the hint loss finds when it runs student and teacher
    side by side: kept blocks count, narrowed ones do not."""
    from recast.baselines import teacher_chain
    from recast.feature_losses import block_outputs
    from recast.hints import hint_blocks
    from recast.models import build_model

    plan = make_plan(walk(build_model(model, width=teacher_width)), target, width)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        student = block_outputs(fresh_student(plan).eval(), x)
        teacher = block_outputs(teacher_chain(plan).eval(), x)
    same = sum(s.shape == t.shape for s, t in zip(student[:-1], teacher[:-1]))
    assert len(hint_blocks(plan)) == same == expected


def test_hints_are_refused_when_the_plan_is_made_and_named_when_not(vgg_teacher) -> None:
    from recast.hints import check_hints

    narrower = make_plan(walk(copy.deepcopy(vgg_teacher)), "conv", 0.5)
    for method, loss in [("hint", "mse-ce"), ("recast", "hint-ce")]:
        with pytest.raises(RecastError, match="no block of the student outputs the shape"):
            check_hints(narrower, method, loss)
    check_hints(narrower, "recast", "mse-ce")
    lines: list[str] = []
    progress = Progress(quiet=True)
    progress.log = lines.append  # type: ignore[method-assign]
    check_hints(make_plan(walk(copy.deepcopy(vgg_teacher)), "conv", 1.0), "hint", "mse-ce",
                progress)
    assert lines and lines[0].startswith("hints at 8 of 8 blocks: ")


def test_a_baseline_leaves_the_teacher_it_is_given_as_it_was(vgg_teacher, loaders) -> None:
    """The plan's chain holds the teacher's own modules: a baseline that froze them
    would freeze the blocks a later recast of the same plan keeps."""
    from recast.baselines import teacher_chain

    teacher = copy.deepcopy(vgg_teacher).train().requires_grad_(True)
    plan = make_plan(walk(teacher), "conv", 0.5)
    before = copy.deepcopy(teacher.state_dict())
    train_student("kd", fresh_student(plan), teacher_chain(plan), *loaders,
                  1 / len(loaders[0]), torch.device("cpu"), Progress(quiet=True))
    assert all(p.requires_grad for p in teacher.parameters()) and teacher.training
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    kept = [plan.build_block(i) for i, step in enumerate(plan.steps) if step.spec is None]
    assert kept and all(p.requires_grad for block in kept for p in block.parameters())
