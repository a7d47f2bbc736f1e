"""dwconv and mbconv, the mobile target kinds: shapes, specs that reload, plans
that shrink, and warm starts from a walked MobileNetV2."""

import pytest
import torch
import torchvision

from blocks import BlockSpec, DWConvBlock, MBConv, build_block
from recast.models import build_model
from recast.plan import make_plan
from recast.serialize import load_student, save_student
from recast.walker import walk
from recast.warmstart import warm_start


@pytest.mark.parametrize("kind", ["dwconv", "mbconv"])
@pytest.mark.parametrize("stride", [1, 2])
def test_mobile_block_output_shape(kind: str, stride: int) -> None:
    block = build_block(kind, 8, 12, stride).eval()
    assert block(torch.randn(2, 8, 16, 16)).shape == (2, 12, 16 // stride, 16 // stride)


def test_mbconv_expands_six_times_and_adds_its_input_only_when_it_can() -> None:
    block = build_block("mbconv", 8, 8)
    assert block.dw.out_channels == 48 and block.dw.groups == 48 and block.residual
    assert not build_block("mbconv", 8, 8, 2).residual
    assert not build_block("mbconv", 8, 12).residual
    assert build_block("mbconv", 8, 8, mid_channels=20).dw.out_channels == 20


def test_depthwise_block_is_depthwise() -> None:
    block = build_block("dwconv", 8, 16, 2)
    assert isinstance(block, DWConvBlock) and block.dw.groups == 8 and block.dw.stride == (2, 2)


def test_mbconv_spec_round_trips_through_json() -> None:
    spec = BlockSpec("mbconv", 16, 24, 2, mid_channels=96)
    assert BlockSpec(**spec.to_json()) == spec
    assert isinstance(spec.build(), MBConv)


@pytest.mark.parametrize("target", ["mbconv", "dwconv"])
def test_a_cifar_resnet_recast_to_a_mobile_kind_is_smaller_and_runs(target: str) -> None:
    plan = make_plan(walk(build_model("resnet20", width=0.5)), target, 0.5)
    assert plan.recast_steps() and all(s.spec.kind == target for s in plan.recast_steps())
    assert plan.size["student"]["params"] < plan.size["teacher"]["params"]
    assert plan.size["student"]["mults"] < plan.size["teacher"]["mults"]
    with torch.no_grad():
        assert plan.build_student().eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_a_mobile_student_reloads_with_identical_logits(tmp_path) -> None:
    plan = make_plan(walk(build_model("resnet20", width=0.25)), "mbconv", 0.5)
    student = plan.build_student().eval()
    for module in student.modules():  # non-trivial statistics, so BN matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    save_student(student, [s.spec for s in plan.steps], tmp_path)
    loaded = load_student(tmp_path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(student(x), loaded(x))


@pytest.fixture(scope="module")
def mobilenet_chain():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10).eval()
    for module in model.modules():  # trained-looking BN statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    return walk(model, (1, 3, 32, 32))


def _block_in(chain, index: int) -> torch.Tensor:
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        for block in chain.blocks[:index]:
            x = block.module(x)
    return x


@pytest.mark.parametrize("index", [1, 3, 4])  # unexpanded, with shortcut, strided
def test_mbconv_at_full_width_warm_starts_to_the_mobilenet_block(mobilenet_chain,
                                                                 index: int) -> None:
    block = mobilenet_chain.blocks[index]
    assert block.kind == "inverted_residual" and block.recastable
    spec = BlockSpec("mbconv", block.in_channels, block.out_channels, block.stride,
                     mid_channels=block.mid_channels)
    target = spec.build().eval()
    kept = warm_start(block, target, torch.arange(block.in_channels), target_kind="mbconv")
    assert kept is not None
    x = _block_in(mobilenet_chain, index)
    with torch.no_grad():
        assert torch.allclose(target(x), block.module(x), atol=1e-5)


def test_dwconv_warm_starts_from_an_unexpanded_block(mobilenet_chain) -> None:
    block = mobilenet_chain.blocks[1]
    target = BlockSpec("dwconv", block.in_channels, 4, block.stride).build()
    kept = warm_start(block, target, torch.arange(block.in_channels), target_kind="dwconv")
    assert kept is not None and len(kept) == 4
    teacher_dw = next(m for m in block.module.modules() if isinstance(m, torch.nn.Conv2d))
    assert torch.equal(target.dw.weight, teacher_dw.weight)
    expanded = mobilenet_chain.blocks[3]
    assert warm_start(expanded, BlockSpec("dwconv", expanded.in_channels, 4).build(),
                      torch.arange(expanded.in_channels), target_kind="dwconv") is None


def test_mobilenet_plans_mobile_targets_with_warm_starts(mobilenet_chain) -> None:
    plan = make_plan(mobilenet_chain, "mbconv", 0.5)
    sources = {s.block.kind for s in plan.recast_steps()}
    assert "inverted_residual" in sources
    with torch.no_grad():
        assert plan.build_student().eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)
