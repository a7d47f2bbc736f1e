"""recast/rebuild.py: a kept block after a narrowed one is rebuilt no bigger than
the teacher's when any stand-in kind can be (a dense rebuild of a grouped block
is bigger: RegNet, ResNeXt, DPN)."""

import torch
from torch import nn

from blocks import MBConv
from recast.plan import make_plan
from recast.rebuild import rebuild_spec, stand_in
from recast.surgery import StudentSurgery
from recast.walker import walk

WIDE, MID = 320, 64


class Basic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(WIDE, WIDE, 3, 1, 1, bias=False), nn.BatchNorm2d(WIDE), nn.ReLU(),
            nn.Conv2d(WIDE, WIDE, 3, 1, 1, bias=False), nn.BatchNorm2d(WIDE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class GroupedBottleneck(nn.Module):
    """1x1 - 3x3 in 8 groups - 1x1 with an identity add, as RegNet and ResNeXt build."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(WIDE, MID, 1, bias=False), nn.BatchNorm2d(MID), nn.ReLU(),
            nn.Conv2d(MID, MID, 3, 1, 1, groups=8, bias=False), nn.BatchNorm2d(MID), nn.ReLU(),
            nn.Conv2d(MID, WIDE, 1, bias=False), nn.BatchNorm2d(WIDE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, WIDE, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(WIDE), nn.ReLU())
        self.basic, self.grouped = Basic(), GroupedBottleneck()
        self.fc = nn.Linear(WIDE, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.grouped(self.basic(self.stem(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_a_grouped_block_after_a_narrowed_one_is_rebuilt_as_a_cheaper_kind() -> None:
    chain = walk(Net().eval(), (1, 3, 8, 8))
    grouped = chain.blocks[2]
    assert grouped.kind == "bottleneck"
    plan = make_plan(chain, "conv", 0.5)
    step = plan.steps[2]
    assert plan.steps[1].recast and not step.recast  # a conv would be bigger than it
    # a fresh dense bottleneck would be bigger than the grouped one, an mbconv is not
    usual = rebuild_spec(grouped, step.in_channels)
    assert usual.kind == "bottleneck"
    assert step.spec.kind == "mbconv" and step.params <= grouped.params
    assert "rebuilt as a fresh mbconv block" in step.kept_reason
    assert "a fresh bottleneck block would be bigger" in step.kept_reason
    assert plan.size["student"]["params"] < plan.size["teacher"]["params"]
    # the engine installs what the plan sized, and the student runs
    surgery = StudentSurgery(plan, "teacher", torch.device("cpu"))
    surgery.install(1)
    assert isinstance(surgery.blocks[2], MBConv)
    with torch.no_grad():
        assert plan.build_student().eval()(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_the_usual_stand_in_is_kept_when_it_fits() -> None:
    chain = walk(Net().eval(), (1, 3, 8, 8))
    grouped = chain.blocks[2]
    generous = (10 ** 9, 10 ** 12)
    rebuilt = stand_in(grouped, WIDE // 2, generous)
    assert rebuilt.spec == rebuild_spec(grouped, WIDE // 2) and rebuilt.instead_of is None
