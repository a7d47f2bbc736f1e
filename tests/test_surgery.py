"""recast/surgery.py: a target goes in, what follows is rebuilt until widths match."""

import torch
from torch import nn

from blocks import ConvBlock
from recast.models import build_model
from recast.plan import make_plan, with_tail
from recast.rebuild import rebuild_spec
from recast.surgery import StudentSurgery
from recast.walker import walk


def _surgery(model="vgg11", target="conv", width=0.5, init="teacher") -> StudentSurgery:
    plan = make_plan(walk(build_model(model, width=0.25)), target, width)
    return StudentSurgery(plan, init, torch.device("cpu"))


def test_a_narrower_target_rebuilds_the_next_block() -> None:
    surgery = _surgery()
    first = surgery.plan.recast_steps()[0].block.index
    warm, last = surgery.install(first)
    assert warm and last == first + 1
    x = torch.randn(2, 3, 32, 32)
    assert nn.Sequential(*surgery.blocks).eval()(x).shape == (2, 10)


def test_the_kept_channels_feed_the_next_blocks_warm_start() -> None:
    surgery = _surgery()
    surgery.install(0)
    assert len(surgery.kept[0]) == surgery.plan.steps[0].out_channels
    assert torch.equal(surgery.input_channels(1), surgery.kept[0])


def test_a_same_width_target_rebuilds_nothing() -> None:
    surgery = _surgery("resnet20", width=1.0)
    index = surgery.plan.recast_steps()[0].block.index
    _, last = surgery.install(index)
    assert last == index


def test_random_init_keeps_no_channels() -> None:
    surgery = _surgery(init="random")
    warm, _ = surgery.install(0)
    assert not warm and not surgery.kept


def test_a_rebuilt_next_block_is_its_own_kind_reading_new_channels() -> None:
    chain = walk(build_model("vgg11", width=0.25))
    module = with_tail(rebuild_spec(chain.blocks[1], 5).build(), chain.blocks[1])
    block = module[0] if isinstance(module, nn.Sequential) else module
    assert isinstance(block, ConvBlock) and block.conv.in_channels == 5


def _dense_surgery(choose: bool) -> StudentSurgery:
    plan = make_plan(walk(build_model("densenet_bc_40_12", width=0.25)), "basic", 0.4)
    solved = [s.block.index for s in plan.recast_steps()] if choose else []
    return StudentSurgery(plan, "teacher", torch.device("cpu"), fit_steps=solved)


def test_a_target_no_warm_start_fills_holds_no_teacher_channels_by_default() -> None:
    surgery = _dense_surgery(choose=False)
    index = surgery.plan.recast_steps()[0].block.index
    warm, _ = surgery.install(index)
    assert not warm and index not in surgery.kept


def test_for_a_closed_form_fit_it_keeps_the_channels_the_next_block_reads_most() -> None:
    surgery = _dense_surgery(choose=True)
    index = surgery.plan.recast_steps()[0].block.index
    step, after = surgery.plan.steps[index], surgery.plan.chain.blocks[index + 1]
    warm, _ = surgery.install(index)
    conv = next(m for m in after.module.modules() if isinstance(m, nn.Conv2d))
    read = conv.weight.abs().sum((0, 2, 3))
    kept = surgery.kept[index]
    assert not warm and len(kept) == step.out_channels < step.block.out_channels
    dropped = torch.ones_like(read, dtype=torch.bool)
    dropped[kept] = False
    assert read[kept].min() >= read[dropped].max()  # the most-read channels, no others
    # the block after it (the teacher's transition, kept) reads just those channels
    rebuilt = next(m for m in surgery.blocks[index + 1].modules() if isinstance(m, nn.Conv2d))
    assert torch.equal(rebuilt.weight, conv.weight[:, kept])
