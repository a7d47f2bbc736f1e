"""A user's own model, written in ordinary PyTorch style, walks like the zoo."""

import torch
import torch.nn.functional as F
from torch import nn

from recast.plan import make_plan
from recast.walker import walk


class UserNet(nn.Module):
    """Functional calls, a residual add, torch.cat and view: as people write."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(16)
        self.r1 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.rb1 = nn.BatchNorm2d(16)
        self.r2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.rb2 = nn.BatchNorm2d(16)
        self.left = nn.Conv2d(16, 8, 1)
        self.right = nn.Conv2d(16, 8, 3, padding=1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.b1(self.c1(x)))
        out = F.relu(self.rb1(self.r1(x)))
        x = F.relu(x + self.rb2(self.r2(out)))
        x = torch.cat([self.left(x), self.right(x)], dim=1)
        x = F.max_pool2d(x, 2)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(x.view(x.size(0), -1))


def build_net(num_classes: int = 10) -> nn.Module:
    return UserNet(num_classes)


def test_user_model_splits_into_an_exact_chain() -> None:
    model = UserNet().eval()
    chain = walk(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), chain.as_module()(x), atol=1e-5)


def test_user_model_blocks_are_classified() -> None:
    kinds = walk(UserNet()).kinds()
    assert kinds == {"stem": 1, "basic": 1, "inception": 1, "head": 1}


def test_user_model_basic_block_can_be_recast_to_conv() -> None:
    plan = make_plan(walk(UserNet()), "conv", 0.5)
    student = plan.build_student().eval()
    assert student(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # the basic block and, as any map-in map-out block is a source, the inception one
    assert [(s.block.kind, s.out_channels) for s in plan.recast_steps()] == [
        ("basic", 8), ("inception", 8)]
