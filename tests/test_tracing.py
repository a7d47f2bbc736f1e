"""Models users bring: Python that reads shapes or the device, leaves, wrapped code."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recast.errors import WalkError
from recast.walker import BlockChain, walk


def _assert_exact(model: nn.Module, shape: tuple[int, ...], **options) -> BlockChain:
    """Walk, then run the chain on a batch of 2 (not the walked 1) against the model."""
    model.eval()
    chain = walk(model, shape, **options)
    x = torch.randn((2, *shape[1:]))
    with torch.no_grad():
        diff = (model(x) - chain.as_module()(x)).abs().max()
    assert diff < 1e-5
    return chain


def pad_same(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TF "same" padding, computed from the input size as timm does."""
    h, w = x.shape[-2], x.shape[-1]
    pad_h = max((math.ceil(h / s) - 1) * s + k - h, 0)
    pad_w = max((math.ceil(w / s) - 1) * s + k - w, 0)
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])


class SamePadConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 3, s: int = 1) -> None:
        super().__init__()
        self.k, self.s = k, s
        self.conv = nn.Conv2d(cin, cout, k, s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(pad_same(x, self.k, self.s))


class Conv2dSame(nn.Conv2d):
    """A Conv2d subclass that pads itself, like timm's Conv2dSame."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel_size[0], self.stride[0])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class Basic(nn.Module):
    def __init__(self, c: int, conv: type[nn.Module] = SamePadConv) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv(c, c, 3), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = conv(c, c, 3), nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


class SamePadNet(nn.Module):
    def __init__(self, conv: type[nn.Module] = SamePadConv) -> None:
        super().__init__()
        self.stem = conv(3, 8, 3, 2)
        self.blocks = nn.Sequential(Basic(8, conv), Basic(8, conv))
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class DeviceCheckNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.dim() == 4:  # reads the device, not values
            x = x.contiguous()
        x = F.relu(self.conv(x))
        return self.fc(x.mean((2, 3)))


class RowFlip(nn.Module):
    """Iterates over the batch: fx cannot trace it, but it runs fine whole."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([row.flip(-1) for row in x])


class RowFlipNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.flip = RowFlip()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.flip(F.relu(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


class WrappedPadNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(pad_same(x, 3, 2))
        return self.fc(x.mean((2, 3)))


def test_same_padding_helper_reading_shapes_walks_exactly() -> None:
    chain = _assert_exact(SamePadNet(), (1, 3, 33, 33))
    assert chain.kinds() == {"stem": 1, "basic": 2, "head": 1}
    assert chain.notes == []


def test_same_padding_chain_runs_at_the_walked_spatial_size_with_any_batch() -> None:
    model = SamePadNet().eval()
    chain = walk(model, (1, 3, 33, 33))
    x = torch.randn(5, 3, 33, 33)
    with torch.no_grad():
        assert torch.allclose(model(x), chain.as_module()(x), atol=1e-5)


def test_conv2d_subclass_with_same_padding_is_kept_whole_as_a_conv() -> None:
    chain = _assert_exact(SamePadNet(Conv2dSame), (1, 3, 32, 32))
    assert chain.kinds() == {"stem": 1, "basic": 2, "head": 1}
    assert "stem" in chain.blocks[0].module_paths


def test_device_type_check_walks_exactly() -> None:
    chain = _assert_exact(DeviceCheckNet(), (1, 3, 16, 16))
    assert chain.kinds() == {"conv": 1, "head": 1}


def test_leaf_module_by_class_name_is_one_call_in_its_block() -> None:
    chain = _assert_exact(SamePadNet(), (1, 3, 32, 32), leaf_modules=["SamePadConv"])
    paths = [p for b in chain.blocks for p in b.module_paths]
    assert "stem" in paths and "blocks.0.conv1" in paths and "stem.conv" not in paths


def test_leaf_module_by_path_keeps_only_that_module_whole() -> None:
    chain = _assert_exact(SamePadNet(), (1, 3, 32, 32), leaf_modules=["blocks.1"])
    assert "blocks.1" in chain.blocks[-2].module_paths
    assert chain.blocks[1].kind == "basic"


def test_unknown_leaf_module_is_named_with_the_fix() -> None:
    with pytest.raises(WalkError, match="--leaf-module Nope matches no submodule of "
                                        "SamePadNet; pass a class name"):
        walk(SamePadNet(), (1, 3, 32, 32), leaf_modules=["Nope"])


def test_leaf_function_is_one_call_in_the_graph() -> None:
    chain = _assert_exact(WrappedPadNet(), (1, 3, 32, 32), leaf_functions=[pad_same])
    code = chain.blocks[0].module.code
    assert "pad_same" in code and "ceil" not in code


def test_untraceable_submodule_becomes_a_leaf_with_a_note() -> None:
    chain = _assert_exact(RowFlipNet(), (1, 3, 16, 16))
    assert any("flip" in b.module_paths for b in chain.blocks)
    assert len(chain.notes) == 1
    assert chain.notes[0].startswith("kept flip (RowFlip) whole as one leaf: ")
    assert "test_tracing.py:" in chain.notes[0]
