"""Target blocks are built from (in, out, stride[, mid, growth]) by name."""

import pytest
import torch

from blocks import BLOCK_KINDS, BlockSpec, build_block


@pytest.mark.parametrize("kind", ["conv", "basic", "bottleneck", "dwconv", "mbconv"])
@pytest.mark.parametrize("stride", [1, 2])
def test_block_output_shape(kind: str, stride: int) -> None:
    block = build_block(kind, 8, 16, stride)
    assert block(torch.randn(2, 8, 16, 16)).shape == (2, 16, 16 // stride, 16 // stride)


def test_dense_block_width_grows_by_layers_times_growth() -> None:
    block = build_block("dense", 8, 8 + 3 * 4, growth=4)
    assert len(block.layers) == 3
    assert block(torch.randn(1, 8, 8, 8)).shape == (1, 20, 8, 8)


def test_dense_block_refuses_impossible_widths() -> None:
    with pytest.raises(ValueError, match="multiple of the growth"):
        build_block("dense", 8, 13, growth=4)


def test_bottleneck_mid_width() -> None:
    block = build_block("bottleneck", 16, 64, mid_channels=8)
    assert block.conv2.in_channels == 8


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="conv, basic, bottleneck, dense"):
        build_block("wide", 8, 8)


def test_spec_round_trips_through_json() -> None:
    spec = BlockSpec("bottleneck", 16, 64, 2, mid_channels=8)
    assert BlockSpec(**spec.to_json()) == spec
    assert set(BLOCK_KINDS) == {"conv", "basic", "bottleneck", "dense", "dwconv", "mbconv"}
