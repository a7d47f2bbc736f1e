"""The paper's six recasting types plan and build students of the right shape."""

import pytest
import torch

from blocks import BasicBlock, ConvBlock
from recast.errors import PlanError
from recast.models import build_model
from recast.plan import make_plan
from recast.walker import walk


def _student_out(plan) -> torch.Size:
    student = plan.build_student().eval()
    with torch.no_grad():
        return student(torch.randn(2, *plan.chain.input_shape[1:])).shape


@pytest.mark.parametrize("model,width,target,source", [
    ("densenet_bc_100_12", 0.5, "basic", "dense"),
    ("densenet_bc_100_12", 0.5, "conv", "dense"),
    ("resnet20", 1.0, "conv", "basic"),
    ("resnet83", 0.5, "conv", "bottleneck"),
    ("wrn_16_4", 0.5, "basic", "basic"),
    ("vgg11", 0.5, "conv", "conv"),
])
def test_paper_type_builds_a_working_student(model, width, target, source) -> None:
    chain = walk(build_model(model, width=width))
    plan = make_plan(chain, target, 0.5)
    steps = plan.recast_steps()
    assert steps and all(s.block.kind == source for s in steps)
    assert all(s.spec.kind == target for s in steps)
    assert _student_out(plan) == (2, 10)


def test_conv_to_conv_width_is_ratio_of_output() -> None:
    plan = make_plan(walk(build_model("vgg16")), "conv", 0.4)
    assert [s.out_channels for s in plan.recast_steps()][:3] == [26, 26, 51]


def test_bottleneck_to_conv_uses_the_mid_width() -> None:
    plan = make_plan(walk(build_model("resnet83")), "conv", 1.0)
    first = plan.recast_steps()[0]
    assert first.block.mid_channels == 16 and first.out_channels == 16


def test_dense_to_basic_preserves_channels_at_ratio_one() -> None:
    chain = walk(build_model("densenet_bc_100_12", width=0.5))
    with pytest.raises(PlanError, match="no block of .* would be recast into basic blocks: "
                       "basic target would be bigger .* and so on for all 3; .*--allow-bigger"):
        make_plan(chain, "basic", 1.0)  # every basic block is bigger: refused, not a no-op
    plan = make_plan(chain, "basic", 1.0, allow_bigger=True)
    assert len(plan.recast_steps()) == 3
    for step in plan.recast_steps():
        assert step.out_channels == step.block.out_channels
        assert isinstance(plan.build_block(step.block.index), BasicBlock)


def test_basic_to_basic_keeps_stride() -> None:
    plan = make_plan(walk(build_model("wrn_16_4")), "basic", 0.5)
    strides = [s.spec.stride for s in plan.recast_steps()]
    assert strides == [1, 1, 2, 1, 2, 1]


def test_head_is_rebuilt_for_the_reduced_width() -> None:
    plan = make_plan(walk(build_model("vgg11")), "conv", 0.25)
    head = plan.steps[-1]
    assert head.in_channels == 128 and not head.recast
    student = plan.build_student()
    assert isinstance(student[0], ConvBlock) or isinstance(student[0][0], ConvBlock)


def test_per_block_widths() -> None:
    chain = walk(build_model("vgg11"))
    plan = make_plan(chain, "conv", [0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25, 1.0])
    assert [s.out_channels for s in plan.recast_steps()] == [32, 64, 64, 64, 128, 128, 128, 512]
    assert _student_out(plan) == (2, 10)


def test_wrong_number_of_widths_is_refused() -> None:
    with pytest.raises(PlanError, match="gives 2 ratios but the model has 8"):
        make_plan(walk(build_model("vgg11")), "conv", [0.5, 0.5])


@pytest.mark.parametrize("width", [0.0, 1.5, -0.2])
def test_width_outside_unit_interval_is_refused(width) -> None:
    with pytest.raises(PlanError, match="outside"):
        make_plan(walk(build_model("vgg11")), "conv", width)


def test_unknown_target_kind_is_refused() -> None:
    with pytest.raises(PlanError, match="unknown target kind 'conv3'"):
        make_plan(walk(build_model("vgg11")), "conv3", 0.5)


def test_dense_target_needs_a_dense_source() -> None:
    with pytest.raises(PlanError, match="dense target needs a dense source"):
        make_plan(walk(build_model("vgg11")), "dense", 0.5)
