"""Residual blocks of feature maps beyond basic/bottleneck (MobileNet's inverted
residuals, ...) are sources too: any target kind replaces them, warm-started
only where the target kind knows the source (mbconv does, conv does not)."""

import pytest
import torch
import torchvision

from recast.plan import make_plan
from recast.surgery import StudentSurgery
from recast.walker import Block, walk


@pytest.fixture(scope="module")
def mobilenet_chain():
    model = torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10).eval()
    return walk(model, (1, 3, 32, 32))


@pytest.mark.parametrize("target", ["conv", "dwconv", "mbconv"])
def test_inverted_residuals_recast_into_any_kind(mobilenet_chain, target: str) -> None:
    plan = make_plan(mobilenet_chain, target, 0.5)
    sources = [s for s in plan.recast_steps() if s.block.kind == "inverted_residual"]
    assert len(sources) >= 10 and all(s.spec.kind == target for s in sources)
    assert plan.size["student"]["params"] < plan.size["teacher"]["params"]
    with torch.no_grad():
        assert plan.build_student().eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("target,warm", [("conv", False), ("mbconv", True)])
def test_the_step_says_whether_it_was_warm_started(mobilenet_chain, target: str,
                                                   warm: bool) -> None:
    plan = make_plan(mobilenet_chain, target, 0.5)
    surgery = StudentSurgery(plan, "teacher", torch.device("cpu"))
    for step in plan.recast_steps():  # in order, as the engine does, up to block 4
        if step.block.index <= 4:
            started, last = surgery.install(step.block.index)
    assert plan.steps[4].recast and started is warm
    # the next inverted residual reads the narrower width meanwhile: an mbconv stand-in
    assert type(surgery.blocks[last]).__name__ == "MBConv"
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for block in surgery.blocks.eval():
            x = block(x)
    assert x.shape == (1, 10)


def test_a_block_on_a_token_sequence_is_not_a_source() -> None:
    block = Block(0, "b", "convnext", None, None, [], (1, 8, 16), (1, 8, 16), 1)
    assert not block.recastable
    assert Block(0, "b", "convnext", None, None, [], (1, 8, 4, 4), (1, 8, 4, 4), 1).recastable


def test_a_warm_start_after_a_target_started_from_scratch_reads_the_right_width() -> None:
    # EfficientNet's 5x5 depthwise blocks give an mbconv (3x3) no warm start; the
    # 3x3 block after one must still slice its input for the narrowed width
    model = torchvision.models.efficientnet_b0(num_classes=10).eval()
    plan = make_plan(walk(model, (1, 3, 32, 32)), "mbconv", 0.5)
    surgery = StudentSurgery(plan, "teacher", torch.device("cpu"))
    started = [surgery.install(step.block.index)[0] for step in plan.recast_steps()]
    assert True in started and False in started
    with torch.no_grad():
        x = torch.randn(1, 3, 32, 32)
        for block in surgery.blocks.eval():
            x = block(x)
    assert x.shape == (1, 10)
