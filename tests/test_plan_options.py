"""Plans for the models users bring: map blocks of any shape as sources, coupled
channels (a fixed successor that cannot read fewer channels), transformers named,
stems on request and channel rounding."""

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.convnext import CNBlockConfig, ConvNeXt

from conftest import cli_error
from recast.errors import PlanError
from recast.plan import make_plan
from recast.report import compression_report, report_markdown
from recast.walker import walk


def _student_runs(plan, shape) -> torch.Tensor:
    with torch.no_grad():
        return plan.build_student().eval()(torch.randn(2, *shape[1:]))


def test_inception_and_fire_blocks_are_sources() -> None:
    chain = walk(torchvision.models.squeezenet1_1(num_classes=10).eval(), (1, 3, 64, 64))
    plan = make_plan(chain, "dwconv", 0.5)
    fires = [s for s in plan.steps if s.block.kind == "inception"]
    recast = [s for s in fires if s.recast]
    assert len(fires) == 8 and len(recast) == 6  # two keep their map size (see below)
    assert all(s.spec.kind == "dwconv" for s in recast)
    assert plan.size["student"]["params"] < plan.size["teacher"]["params"]
    assert _student_runs(plan, (1, 3, 64, 64)).shape == (2, 10)


def test_a_convnext_layernorm_transition_is_rebuilt_for_the_narrower_width() -> None:
    model = ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], num_classes=10)
    chain = walk(model.eval(), (1, 3, 32, 32))
    plan = make_plan(chain, "dwconv", 0.5)
    assert [s.block.kind for s in plan.recast_steps()] == ["convnext", "convnext"]
    assert all(s.note is None for s in plan.steps)  # narrowed, not kept at width
    student = plan.build_student()
    norms = [m for m in student.modules() if isinstance(m, nn.LayerNorm)]
    assert any(tuple(m.normalized_shape) == (8,) for m in norms)  # the transition's, 16 -> 8
    assert _student_runs(plan, (1, 3, 32, 32)).shape == (2, 10)


class _TokenHead(nn.Module):
    """A head that mixes channels on tokens (a permute no adapt rule can narrow)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mix = nn.Linear(channels, channels)
        self.fc = nn.Linear(channels, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.mix(x.flatten(2).transpose(1, 2))
        return self.fc(tokens.mean(1))


class _ResidualThenTokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU())
        self.a = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                               nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, bias=False),
                               nn.BatchNorm2d(16))
        self.head = _TokenHead(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.head(torch.relu(x + self.a(x)))


def test_a_block_before_an_unadaptable_part_keeps_its_output_width_and_says_so() -> None:
    chain = walk(_ResidualThenTokens().eval(), (1, 3, 16, 16))
    plan = make_plan(chain, "dwconv", 0.5)
    step = plan.recast_steps()[0]
    assert step.out_channels == 16 and step.spec.out_channels == 16
    assert "output kept at the teacher's 16 channels" in step.note and "transpose" in step.note
    markdown = report_markdown(compression_report(plan, latency=False))
    assert "Recast with a note:" in markdown and "cannot read fewer" in markdown
    assert _student_runs(plan, (1, 3, 16, 16)).shape == (2, 10)


def test_a_transformer_is_named_in_one_line() -> None:
    vit = torchvision.models.VisionTransformer(32, 8, num_layers=1, num_heads=2, hidden_dim=16,
                                               mlp_dim=32, num_classes=10)
    with pytest.raises(PlanError, match="attention and mlp blocks work on tokens"):
        make_plan(walk(vit.eval(), (1, 3, 32, 32)), "conv", 0.5)


def test_the_stem_is_recast_only_on_request() -> None:
    chain = walk(torchvision.models.resnet18(num_classes=10).eval(), (1, 3, 64, 64))
    assert not make_plan(chain, "conv", 0.5).steps[0].recast
    plan = make_plan(chain, "conv", 0.5, include_stem=True)
    stem = plan.steps[0]
    assert stem.recast and stem.spec.in_channels == 3 and stem.out_channels == 32
    assert _student_runs(plan, (1, 3, 64, 64)).shape == (2, 10)


@pytest.mark.parametrize("target", ["conv", "mbconv"])
def test_round_channels_gives_multiples_and_reports_their_cost(target: str) -> None:
    model = torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=10)
    chain = walk(model.eval(), (1, 3, 32, 32))
    plan = make_plan(chain, target, 0.3, round_channels=8)
    for step in plan.recast_steps():
        assert step.spec.out_channels % 8 == 0 or step.note, step
        assert (step.spec.mid_channels or 8) % 8 == 0
    unrounded = make_plan(chain, target, 0.3).size["student"]
    assert plan.rounding == {"multiple": 8, "student_unrounded": unrounded}
    assert unrounded != plan.size["student"]  # at 0.3 some widths really moved
    markdown = report_markdown(compression_report(plan, latency=False))
    assert "Channels rounded to multiples of 8" in markdown


def test_round_channels_rounds_a_dense_blocks_growth() -> None:
    from blocks import BlockSpec
    from recast.widths import rounded

    spec = rounded(BlockSpec("dense", 24, 24 + 6 * 5, growth=5), 4)
    assert spec.growth == 4 and spec.out_channels == 24 + 6 * 4


def test_round_channels_below_one_is_one_cli_line(capsys) -> None:
    err = cli_error(capsys, ["report", "resnet18", "--target", "conv", "--width", "0.5",
                             "--round-channels", "0"])
    assert "--round-channels 0" in err


def test_a_target_whose_map_size_would_differ_is_kept_and_every_map_matches() -> None:
    # SqueezeNet pools in ceil mode on odd maps (15 -> 7): a stride-2 target gives 8
    chain = walk(torchvision.models.squeezenet1_1(num_classes=10).eval(), (1, 3, 64, 64))
    plan = make_plan(chain, "dwconv", 0.5)
    kept = {s.block.name: s.kept_reason for s in plan.kept_steps()}
    assert "gives a 8x8 map where the teacher block gives 7x7" in kept["features.6"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for block, module in zip(chain.blocks, plan.build_student().eval()):
            x = module(x)
            assert x.shape[2:] == block.out_shape[2:], block.name
