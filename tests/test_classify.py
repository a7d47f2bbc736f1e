"""Each block kind is recognised where the paper's models have it."""

import torchvision

from recast.models import build_model
from recast.walker import walk


def _kinds(model, size: int = 32) -> dict[str, int]:
    return walk(model, (1, 3, size, size)).kinds()


def test_vgg16_cifar_is_13_conv_blocks_and_a_head() -> None:
    assert _kinds(build_model("vgg16", width=0.25)) == {"conv": 13, "head": 1}


def test_resnet20_is_9_basic_blocks_after_a_stem() -> None:
    assert _kinds(build_model("resnet20")) == {"stem": 1, "basic": 9, "head": 1}


def test_resnet83_is_27_bottlenecks() -> None:
    assert _kinds(build_model("resnet83", width=0.5))["bottleneck"] == 27


def test_resnet29_is_9_bottlenecks_after_a_stem() -> None:
    assert _kinds(build_model("resnet29", width=0.5)) == {"stem": 1, "bottleneck": 9, "head": 1}


def test_wrn_blocks_are_basic() -> None:
    assert _kinds(build_model("wrn_16_4", width=0.5))["basic"] == 6


def test_densenet_bc_has_3_dense_blocks_and_2_transitions() -> None:
    kinds = _kinds(build_model("densenet_bc_100_12", width=0.5))
    assert kinds["dense"] == 3 and kinds["transition"] == 2


def test_torchvision_resnet50_has_16_bottlenecks() -> None:
    model = torchvision.models.resnet50()
    assert _kinds(model, 64) == {"stem": 1, "bottleneck": 16, "head": 1}


def test_torchvision_densenet121_has_4_dense_blocks() -> None:
    kinds = _kinds(torchvision.models.densenet121(), 64)
    assert kinds["dense"] == 4 and kinds["transition"] == 3


def test_mobilenet_v2_blocks_are_inverted_residuals() -> None:
    kinds = _kinds(torchvision.models.mobilenet_v2(), 64)
    assert kinds["inverted_residual"] == 17


def test_bottleneck_records_its_mid_width() -> None:
    chain = walk(torchvision.models.resnet50(), (1, 3, 64, 64))
    first = next(b for b in chain.blocks if b.kind == "bottleneck")
    assert (first.in_channels, first.mid_channels, first.out_channels) == (64, 64, 256)


def test_dense_block_records_growth_and_layers() -> None:
    chain = walk(build_model("densenet_bc_100_12"))
    dense = next(b for b in chain.blocks if b.kind == "dense")
    assert (dense.growth, dense.n_layers, dense.in_channels) == (12, 16, 24)
    assert dense.out_channels == 24 + 16 * 12


def test_block_records_stride_and_shapes() -> None:
    chain = walk(build_model("resnet20"))
    strided = [b for b in chain.blocks if b.kind == "basic" and b.stride == 2]
    assert len(strided) == 2
    assert strided[0].in_shape == (1, 16, 32, 32)
    assert strided[0].out_shape == (1, 32, 16, 16)
