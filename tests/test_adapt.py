"""recast/adapt.py: a kept part's input layers are rebuilt for a new width."""

import pytest
import torch
from torch import fx, nn

from recast.adapt import adapt_input, output_shape
from recast.errors import PlanError


class Head(nn.Module):
    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, 10)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.bn(x), 1), 1))


def test_a_head_reads_a_narrower_input() -> None:
    adapted = adapt_input(fx.symbolic_trace(Head()), (1, 8, 4, 4), 5)
    assert output_shape(adapted, (1, 5, 4, 4)) == (1, 10)


def test_kept_channels_slice_the_old_weights() -> None:
    head = Head()
    keep = torch.tensor([0, 2, 7])
    adapted = adapt_input(fx.symbolic_trace(head), (1, 8, 4, 4), 3, keep)
    assert torch.equal(adapted.fc.weight, head.fc.weight[:, keep])
    assert torch.equal(adapted.bn.running_var, head.bn.running_var[keep])


def test_a_depthwise_reader_is_named_with_the_fix() -> None:
    class Depthwise(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)

        def forward(self, x):
            return self.dw(x)

    with pytest.raises(PlanError, match="cannot rebuild 'dw'"):
        adapt_input(fx.symbolic_trace(Depthwise()), (1, 8, 4, 4), 5)


class ActivatedHead(nn.Module):
    """One activation written three ways before the pooling: module, function, method."""

    def __init__(self, last: str = "relu_") -> None:
        super().__init__()
        self.act, self.last = nn.Hardswish(), last
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = getattr(nn.functional.leaky_relu(self.act(x)), self.last)(*(
            [1] if self.last == "softmax" else []))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_an_elementwise_activation_passes_through_however_written() -> None:
    adapted = adapt_input(fx.symbolic_trace(ActivatedHead()), (1, 8, 4, 4), 5)
    assert output_shape(adapted, (1, 5, 4, 4)) == (1, 10)
    with pytest.raises(PlanError, match="softmax"):  # mixes channels: not elementwise
        adapt_input(fx.symbolic_trace(ActivatedHead("softmax")), (1, 8, 4, 4), 5)


@pytest.mark.parametrize("name", [
    "relu", "relu6", "gelu", "silu", "hardswish", "hardsigmoid", "sigmoid", "tanh",
    "leaky_relu", "leaky_relu_", "elu", "selu", "celu", "mish", "softplus", "hardtanh",
    "logsigmoid", "softsign", "tanhshrink", "rrelu", "relu_"])
def test_every_functional_activation_name_matches_its_module(name) -> None:
    from recast.ops import is_elementwise_activation
    assert is_elementwise_activation(name)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "prelu", "glu", "add", "conv2d"])
def test_channel_mixing_or_weighted_ops_are_not_elementwise(name) -> None:
    from recast.ops import is_elementwise_activation
    assert not is_elementwise_activation(name)


def test_most_read_channels_adds_every_first_reader_each_scaled_to_one() -> None:
    from recast.adapt import most_read_channels

    class TwoReaders(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.main = nn.Conv2d(4, 2, 3, padding=1, bias=False)
            self.side = nn.Conv2d(4, 2, 1, bias=False)

        def forward(self, x):
            return self.main(torch.relu(x)) + self.side(x)

    block = fx.symbolic_trace(TwoReaders())
    with torch.no_grad():
        block.main.weight.copy_(torch.tensor([4.0, 0, 0, 1]).view(1, 4, 1, 1).expand(2, 4, 3, 3))
        block.side.weight.copy_(torch.tensor([0.0, 1, 2, 0]).view(1, 4, 1, 1).expand(2, 4, 1, 1))
    # shares: main [0.8, 0, 0, 0.2], side [0, 1/3, 2/3, 0]; raw sums (72, 2, 4, 18)
    # would keep channel 3, whose share is the smallest
    assert most_read_channels(block, 4, 2).tolist() == [0, 2]
    assert most_read_channels(block, 4, 3).tolist() == [0, 1, 2]


def test_most_read_channels_is_none_where_no_conv_or_linear_reads_them() -> None:
    from recast.adapt import most_read_channels

    class Concat(nn.Module):
        def forward(self, x):
            return torch.cat([x, x * 2], 1)

    head = fx.symbolic_trace(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)))
    assert most_read_channels(fx.symbolic_trace(Concat()), 4, 2) is None
    assert most_read_channels(head, 4, 2) is None  # it reads a flattened 4x4x4 map
    assert most_read_channels(nn.Conv2d(4, 2, 1), 4, 2) is None  # not a traced block
