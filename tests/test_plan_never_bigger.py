"""Never bigger in silence: a target bigger than its source is kept unless forced,
the plan and the report say why, and a kept block after a narrowed one reads
the narrower input (its input layers rebuilt, or a fresh block of its kind)."""

import dataclasses

import pytest
import torch
import torchvision
from torch import Tensor, nn

import recast.plan as plan_module
from blocks import BLOCK_KINDS, BasicBlock, BlockKind, BlockSpec, register_kind
from blocks.registry import same_widths, scaled
from recast.errors import PlanError
from recast.models import build_model
from recast.plan import make_plan
from recast.report import compression_report, report_markdown
from recast.surgery import StudentSurgery
from recast.walker import walk
from recast.warmstart import warm_student


@pytest.fixture(scope="module")
def mobilenet_chain():
    model = torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10).eval()
    return walk(model, (1, 3, 32, 32))


def test_a_bigger_target_is_kept_and_the_plan_says_why(mobilenet_chain) -> None:
    plan = make_plan(mobilenet_chain, "conv", 0.5)
    kept = {s.block.index: s for s in plan.kept_steps()}
    assert 1 in kept and not kept[1].recast and kept[1].spec is None
    assert "conv target would be bigger" in kept[1].kept_reason
    assert kept[1].kept_because == "bigger"
    assert plan.size["student"]["params"] <= plan.size["teacher"]["params"]
    report = compression_report(plan, latency=False)
    entry = report["blocks"][1]
    assert not entry["recast"] and entry["kept_reason"] == kept[1].kept_reason
    assert entry["kept_because"] == "bigger"
    assert entry["params_after"] == entry["params"]
    markdown = report_markdown(report)
    assert "| kept* |" in markdown and kept[1].kept_reason in markdown


def test_allow_bigger_forces_the_recast(mobilenet_chain) -> None:
    plan = make_plan(mobilenet_chain, "conv", 0.5, allow_bigger=True)
    assert not plan.kept_steps()
    assert plan.steps[1].recast and plan.steps[1].params > plan.steps[1].block.params


def test_a_kept_block_after_a_narrowed_one_gets_new_input_layers(mobilenet_chain) -> None:
    plan = make_plan(mobilenet_chain, "conv", 0.5)
    last = plan.steps[-2]  # the 1x1 conv before the head: a 3x3 conv would be bigger
    assert last.kept_reason and last.spec is None
    assert last.in_channels < last.block.in_channels
    assert last.out_channels == last.block.out_channels
    with torch.no_grad():
        assert plan.build_student().eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


class Conv5(nn.Module):
    """A test-only kind: 7x7 conv - BN - ReLU (1x1 where the source strides)."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        k = 1 if spec.stride == 2 else 7
        self.conv = nn.Conv2d(spec.in_channels, spec.out_channels, k, spec.stride, k // 2,
                              bias=False)
        self.bn = nn.BatchNorm2d(spec.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.bn(self.conv(x)))


@pytest.fixture
def conv5():
    """Narrow and cheap at strided blocks, full width and bigger than a basic block
    elsewhere: the block after a strided one is kept but reads a narrower input."""
    def target_spec(source, ratio, channels):
        width = scaled(source.out_channels, ratio) if source.stride == 2 \
            else source.out_channels
        return BlockSpec("conv5", channels, width, source.stride)

    yield register_kind(BlockKind("conv5", Conv5, target_spec, same_widths("conv5")))
    del BLOCK_KINDS["conv5"]


def test_a_kept_residual_block_after_a_narrowed_one_is_rebuilt(conv5) -> None:
    plan = make_plan(walk(build_model("resnet20", width=0.5)), "conv5", 0.5)
    rebuilt = [s for s in plan.kept_steps() if s.spec is not None]
    assert rebuilt, [s.kept_reason for s in plan.kept_steps()]
    step = rebuilt[0]
    assert "rebuilt as a fresh basic block" in step.kept_reason
    assert step.spec == BlockSpec("basic", step.in_channels, step.block.out_channels, 1)
    assert step.in_channels < step.block.in_channels and not step.recast
    assert isinstance(plan.build_block(step.block.index), BasicBlock)
    # the sequential engine builds the same block when it rebuilds after the strided one
    surgery = StudentSurgery(plan, "teacher", torch.device("cpu"))
    assert surgery.install(step.block.index - 1)[1] == step.block.index
    assert isinstance(surgery.blocks[step.block.index], BasicBlock)
    blocks, _ = warm_student(plan)  # and so does the all-at-once pass
    assert isinstance(blocks[step.block.index], BasicBlock)
    with torch.no_grad():
        assert nn.Sequential(*blocks).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_a_student_bigger_than_the_teacher_is_refused_unless_forced(monkeypatch) -> None:
    kept = plan_module._kept

    def bloated(block, channels, teacher):
        step = kept(block, channels, teacher)
        return dataclasses.replace(step, params=step.params + 10**8)

    monkeypatch.setattr(plan_module, "_kept", bloated)
    chain = walk(build_model("vgg11", width=0.125))
    with pytest.raises(PlanError, match="more params than the teacher .*--allow-bigger"):
        make_plan(chain, "conv", 0.5)
    assert make_plan(chain, "conv", 0.5, allow_bigger=True).size["student"]["params"] > 10**8


class Halver(nn.Module):
    """A test-only kind whose map is always half the teacher block's: it never fits."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.conv = nn.Conv2d(spec.in_channels, spec.out_channels, 1, 2 * spec.stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


def test_a_plan_whose_targets_never_fit_is_refused_with_other_advice() -> None:
    def target_spec(source, ratio, channels):
        return BlockSpec("halver", channels, scaled(source.out_channels, ratio), source.stride)

    register_kind(BlockKind("halver", Halver, target_spec, same_widths("halver")))
    try:
        with pytest.raises(PlanError, match=r"would be recast into halver blocks: a stride-1 "
                           r"target gives a 16x16 map .*; `recast inspect` shows") as caught:
            make_plan(walk(build_model("resnet20", width=0.5)), "halver", 0.5)
        assert "--allow-bigger" not in str(caught.value)  # size is not what stood in the way
        with pytest.raises(PlanError, match="would be recast into halver blocks: a stride-1"):
            make_plan(walk(build_model("resnet20", width=0.5)), "halver", budget_params=0.5)
    finally:
        del BLOCK_KINDS["halver"]
