"""blocks/registry.py: a new block kind is one registration, and every part of recast
(plan, student surgery, warm start, the CLI's choices) picks it up."""

import pytest
import torch
from torch import Tensor, nn

from blocks import BLOCK_KINDS, BlockKind, BlockSpec, block_kind, register_kind
from blocks.registry import same_widths, target_width
from recast.engine import Recaster
from recast.models import build_model
from recast.plan import make_plan
from recast.settings import RecastConfig
from recast.walker import walk


class PointwiseBlock(nn.Module):
    """A test-only kind: 1x1 conv (stride) -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.bn(self.conv(x)))


@pytest.fixture
def pointwise():
    kind = register_kind(BlockKind(
        "pointwise", lambda s: PointwiseBlock(s.in_channels, s.out_channels, s.stride),
        lambda source, ratio, channels: BlockSpec(
            "pointwise", channels, target_width(source, ratio, "pointwise"), source.stride),
        same_widths("pointwise"), summary="1x1 conv - BN - ReLU"))
    yield kind
    del BLOCK_KINDS["pointwise"]


def test_a_registered_kind_plans_and_recasts(pointwise, loaders) -> None:
    plan = make_plan(walk(build_model("vgg11", width=0.125)), "pointwise", 0.5)
    assert all(s.spec.kind == "pointwise" for s in plan.recast_steps())
    config = RecastConfig(epochs_per_block=2 / len(loaders[0]), finetune_epochs=0.01)
    outcome = Recaster(plan, config, torch.device("cpu")).run(*loaders)
    assert sum(isinstance(m, PointwiseBlock) for m in outcome.student.modules()) == 8
    assert not any(s.warm_start for s in outcome.steps)  # it declared no warm start


def test_a_registered_kind_is_a_cli_choice(pointwise, capsys) -> None:
    from recast.cli import run

    assert run(["report", "vgg11", "--target", "pointwise", "--width", "0.5",
                "--no-latency", "--json"]) == 0
    assert '"target": "pointwise"' in capsys.readouterr().out


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="conv, basic, bottleneck, dense"):
        block_kind("tower")


def test_built_in_kinds_say_what_they_warm_start_from() -> None:
    assert block_kind("conv").warm_sources == ("conv", "basic")
    assert block_kind("basic").warm_sources == ("basic",)
    assert block_kind("dense").warm_start is None


def test_mobile_kinds_register_themselves_with_their_warm_sources() -> None:
    assert block_kind("mbconv").warm_sources == ("inverted_residual",)
    assert block_kind("dwconv").warm_sources == ("inverted_residual",)
    assert list(BLOCK_KINDS)[-2:] == ["dwconv", "mbconv"]
