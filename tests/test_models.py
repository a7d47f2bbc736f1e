"""The model zoo: paper-exact sizes, forward shapes, fx tracing, name resolution."""

import pytest
import torch
import torchvision
from fvcore.nn import FlopCountAnalysis
from torch import fx, nn

from recast.models import CIFAR_MODELS, UnknownModelError, build_model, model_names
from recast.models.densenet import DenseBlock
from recast.models.torchvision_zoo import TORCHVISION_NAMES
from recast.models.wrn import wide_resnet

torch.manual_seed(0)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_macs(model: nn.Module, size: int = 32) -> int:
    flops = FlopCountAnalysis(model, torch.randn(1, 3, size, size))
    flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return flops.by_operator()["conv"]


@pytest.fixture(scope="module")
def wrn_28_10() -> nn.Module:
    return build_model("wrn_28_10")


# --- sizes the paper (and METHOD.md) report -------------------------------------------

def test_cifar_vgg16_has_14724042_params():
    assert n_params(build_model("vgg16")) == 14_724_042


def test_cifar_vgg16_at_width_04_has_2360974_params():
    assert n_params(build_model("vgg16", width=0.4)) == 2_360_974


@pytest.mark.parametrize("width, macs", [(1.0, 313_196_544), (0.4, 50_631_372)])
def test_cifar_vgg16_conv_macs_match_paper_mults(width, macs):
    assert conv_macs(build_model("vgg16", width=width)) == macs


def test_wrn_28_10_params_within_0p1_percent_of_36_48m(wrn_28_10):
    assert abs(n_params(wrn_28_10) - 36.48e6) / 36.48e6 < 1e-3
    assert n_params(wrn_28_10) == 36_481_402


def test_wrn_28_10_conv_macs_are_5_243b(wrn_28_10):
    assert conv_macs(wrn_28_10) == 5_243_322_368


def test_wrn_28_2_matches_paper_student_size():
    model = build_model("wrn_28_2")
    assert n_params(model) == 1_468_026  # METHOD.md: 1.468M
    assert conv_macs(model) == 214_351_872  # METHOD.md: 0.214B


def test_wrn_first_block_projects_16_to_16k_channels():
    # The authors' WRN shortcut is a 1x1 conv + BN wherever the width changes.
    first = wide_resnet(16, 4).layer1[0]
    assert first.downsample is not None
    assert first.downsample[0].in_channels == 16 and first.downsample[0].out_channels == 64


def _option_a_resnet_params(n: int, num_classes: int = 10) -> int:
    """He et al.'s CIFAR ResNet-(6n+2) with option-A shortcuts and a stem BN."""
    stem = 3 * 16 * 9 + 2 * 16
    total = stem
    in_c = 16
    for c in (16, 32, 64):
        for i in range(n):
            total += (in_c if i == 0 else c) * c * 9 + c * c * 9 + 2 * 2 * c
        in_c = c
    return total + 64 * num_classes + num_classes


def test_resnet20_param_count_with_option_b_shortcuts():
    option_a = _option_a_resnet_params(3)
    assert option_a == 269_722  # the paper's "0.27M"
    projections = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    stem_bn = 2 * 16  # the authors' stem is a bare conv
    assert n_params(build_model("resnet20")) == option_a + projections - stem_bn == 272_442


def test_resnet56_param_count_with_option_b_shortcuts():
    assert _option_a_resnet_params(9) == 853_018
    assert n_params(build_model("resnet56")) == 855_738


def test_resnet83_bottleneck_param_count():
    assert n_params(build_model("resnet83")) == 869_498


def test_densenet_bc_100_12_param_count():
    assert n_params(build_model("densenet_bc_100_12")) == 769_444


def test_densenet_bc_40_12_has_three_dense_blocks_of_6_layers():
    model = build_model("densenet_bc_40_12")
    blocks = [m for m in model.modules() if isinstance(m, DenseBlock)]
    assert [len(b.layers) for b in blocks] == [6, 6, 6]
    assert [b.out_channels for b in blocks] == [24 + 72, 48 + 72, 60 + 72]
    assert n_params(model) == 176_254


def test_densenet_bc_100_12_has_three_separate_dense_blocks_of_16_layers():
    blocks = [m for m in build_model("densenet_bc_100_12").modules() if isinstance(m, DenseBlock)]
    assert [len(b.layers) for b in blocks] == [16, 16, 16]
    assert [b.out_channels for b in blocks] == [24 + 192, 108 + 192, 150 + 192]


def test_width_multiplier_rounds_channels_and_keeps_at_least_one():
    assert build_model("resnet20", width=0.5).conv1.out_channels == 8
    assert build_model("vgg11", width=0.001).features[0].conv.out_channels == 1


# --- every CIFAR model --------------------------------------------------------------

CIFAR_NAMES = sorted(CIFAR_MODELS)


@pytest.mark.parametrize("name", CIFAR_NAMES)
def test_cifar_model_forward_gives_batch_by_classes(name):
    model = build_model(name).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", CIFAR_NAMES)
def test_cifar_model_forward_with_one_channel_and_100_classes(name):
    model = build_model(name, in_channels=1, num_classes=100, width=0.5)
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 100)


@pytest.mark.parametrize("name", CIFAR_NAMES)
def test_cifar_model_traces_with_fx_to_the_same_function(name):
    model = build_model(name, width=0.25).eval()
    traced = fx.symbolic_trace(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))


def test_cifar_models_init_bn_to_one_and_zero():
    bns = [m for m in build_model("resnet20").modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bool((b.weight == 1).all()) and bool((b.bias == 0).all()) for b in bns)


@pytest.mark.parametrize("builder, depth", [("cifar_resnet", 21), ("wide_resnet", 27),
                                            ("densenet_bc", 99), ("cifar_vgg", 15)])
def test_invalid_depth_raises_value_error(builder, depth):
    from recast.models import densenet, resnet, vgg, wrn
    module = {"cifar_resnet": resnet, "wide_resnet": wrn, "densenet_bc": densenet,
              "cifar_vgg": vgg}[builder]
    args = (depth, 2) if builder in ("wide_resnet", "densenet_bc") else (depth,)
    with pytest.raises(ValueError, match="depth"):
        getattr(module, builder)(*args)


# --- name resolution ----------------------------------------------------------------

def test_vgg16_at_input_224_is_torchvision_vgg():
    assert isinstance(build_model("vgg16", input_size=224), torchvision.models.VGG)


def test_vgg16_at_input_32_is_the_cifar_vgg():
    assert not isinstance(build_model("vgg16"), torchvision.models.VGG)


def test_torchvision_only_name_at_input_32_is_torchvision_model():
    assert isinstance(build_model("resnet18", input_size=32), torchvision.models.ResNet)


def test_cifar_only_name_at_input_224_builds_the_cifar_model():
    model = build_model("resnet20", input_size=224).eval()
    assert not isinstance(model, torchvision.models.ResNet)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 10)


def test_cifar_vgg_at_input_48_raises_naming_torchvision_bn_variant():
    with pytest.raises(ValueError, match="'vgg16_bn'"):
        build_model("vgg16", input_size=48)


def test_unknown_name_raises_unknown_model_error_suggesting_vgg16():
    with pytest.raises(UnknownModelError, match="vgg16") as info:
        build_model("vgg61")
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_width_on_torchvision_model_raises_value_error():
    with pytest.raises(ValueError, match="CIFAR zoo"):
        build_model("resnet18", width=0.5)


def test_torchvision_model_with_one_input_channel_replaces_first_conv():
    model = build_model("resnet18", in_channels=1, num_classes=7).eval()
    assert model.conv1.in_channels == 1
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)


def test_googlenet_training_forward_returns_plain_logits():
    model = build_model("googlenet", input_size=32)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_torchvision_input_too_small_raises_value_error():
    with pytest.raises(ValueError, match="at least 63x63"):
        build_model("alexnet", input_size=32)


def test_model_names_lists_both_zoos_sorted():
    names = model_names()
    assert names == sorted(names)
    assert {"vgg16", "vgg16_bn", "resnet56", "resnet50", "wrn_28_10",
            "densenet_bc_100_12"} <= set(names)


def test_model_names_for_input_size_leaves_out_models_that_cannot_take_it():
    assert "alexnet" not in model_names(32) and "alexnet" in model_names(224)
    assert "vgg16" in model_names(32) and "vgg16" not in model_names(48)
    assert "resnet56" in model_names(224)


def test_torchvision_names_are_classification_models_only():
    assert "resnet50" in TORCHVISION_NAMES
    for other in ("fasterrcnn_resnet50_fpn", "fcn_resnet50", "r3d_18", "raft_small",
                  "quantized_resnet18"):
        assert other not in TORCHVISION_NAMES
