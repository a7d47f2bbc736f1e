"""The classifier is the head however it is written: linear, or conv on a pooled map."""

import torch
import torch.nn.functional as F
from torch import nn

from recast.walker import BlockChain, walk


def _assert_exact(model: nn.Module, shape: tuple[int, ...]) -> BlockChain:
    model.eval()
    chain = walk(model, shape)
    x = torch.randn((2, *shape[1:]))
    with torch.no_grad():
        assert (model(x) - chain.as_module()(x)).abs().max() < 1e-5
    return chain


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


class ConvClassifierNet(nn.Module):
    """Global pool, then a 1x1 conv as the classifier (timm's use_conv head)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.layer = nn.Sequential(Residual(16), Residual(16))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Conv2d(16, 10, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.layer(self.stem(x)))
        return torch.flatten(self.classifier(x), 1)


class ConvHeadNet(ConvClassifierNet):
    """Global pool, a 1x1 "conv head" with an activation, then a linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_head = nn.Conv2d(16, 32, 1)
        self.classifier = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer(self.stem(x)).mean((2, 3), keepdim=True)  # the pool as a mean
        x = F.hardswish(self.conv_head(x))
        return self.classifier(torch.flatten(x, 1))


class ConvBeforePoolNet(ConvClassifierNet):
    """SqueezeNet's order: the 1x1 conv classifier runs before the global pool."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.classifier(self.layer(self.stem(x))))
        return torch.flatten(self.pool(x), 1)


def test_conv_classifier_after_global_pooling_is_the_head() -> None:
    chain = _assert_exact(ConvClassifierNet(), (1, 3, 28, 28))
    assert chain.kinds() == {"stem": 1, "basic": 2, "head": 1}
    head = chain.blocks[-1]
    assert head.stride == 1 and head.out_shape == (1, 10)


def test_conv_head_and_linear_after_global_pooling_are_one_head() -> None:
    chain = _assert_exact(ConvHeadNet(), (1, 3, 28, 28))
    assert chain.kinds() == {"stem": 1, "basic": 2, "head": 1}
    assert {"conv_head", "classifier"} <= set(chain.blocks[-1].module_paths)


def test_conv_classifier_before_global_pooling_is_the_head() -> None:
    chain = _assert_exact(ConvBeforePoolNet(), (1, 3, 28, 28))
    assert chain.kinds() == {"stem": 1, "basic": 2, "head": 1}
