"""Layer patterns of timm CNNs, hand-written here (timm is optional, never imported).

Each test reproduces one failure class the timm coverage sample
(scripts/walk_coverage.py --zoo timm) showed: norm+activation layers and
weight-standardised or "same"-padded convs that adapt must rebuild, activations
adapt must pass through, gate branches (selective kernel, global context) that
are not attention, fixed blur filters that are pools, not convs, and block
layouts beyond the paper's three (Res2Net, MobileNetV4's UIR).
"""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from recast.adapt import adapt_input, output_shape
from recast.plan import make_plan
from recast.walker import walk


def _exact(model: nn.Module, shape: tuple[int, ...] = (1, 3, 16, 16)):
    model.eval()
    chain = walk(model, shape)
    x = torch.randn(shape)
    with torch.no_grad():
        assert torch.allclose(model(x), chain.as_module()(x), atol=1e-5)
    return chain


def _block(chain, kind: str):
    return next(b for b in chain.blocks if b.kind == kind)


class BatchNormAct(nn.BatchNorm2d):
    """timm's BatchNormAct2d: a BatchNorm2d subclass calling F.batch_norm, then an act."""

    def __init__(self, channels: int, act: nn.Module) -> None:
        super().__init__(channels)
        self.act = act

    def forward(self, x):
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                         self.training, self.momentum, self.eps)
        return self.act(x)


class GroupNormAct(nn.GroupNorm):
    def __init__(self, groups: int, channels: int) -> None:
        super().__init__(groups, channels)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps))


class StdConv(nn.Conv2d):
    """A weight-standardised conv (timm's StdConv2d) with "same" padding."""

    def forward(self, x):
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                         training=True, momentum=0.0, eps=1e-6).reshape_as(self.weight)
        return F.conv2d(pad_same(x, self.kernel_size[0], self.stride[0]), w, self.bias,
                        self.stride, 0, self.dilation, self.groups)


def pad_same(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TF "same" padding from the input's shape (timm's pad_same: max() on sizes)."""
    ih, iw = x.size()[-2:]
    ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
    pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


class Basic(nn.Module):
    """3x3, 3x3 and a shortcut; ``mid`` runs between the two convs."""

    def __init__(self, c: int, mid: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.mid = mid or nn.Identity()
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = self.mid(F.relu(self.bn1(self.conv1(x))))
        return F.relu(self.bn2(self.conv2(y)) + x)


class Net(nn.Module):
    """stem conv, the given blocks, then ``head`` on the last map."""

    def __init__(self, blocks: list[nn.Module], head: nn.Module, c: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.blocks = nn.Sequential(*blocks)
        self.head = head

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def _pool_head(c: int, *before: nn.Module) -> nn.Sequential:
    return nn.Sequential(*before, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))


def test_a_batchnorm_act_subclass_is_one_layer_and_adapt_keeps_its_activation() -> None:
    head = _pool_head(8, BatchNormAct(8, nn.LeakyReLU(0.2)))
    chain = _exact(Net([Basic(8), Basic(8)], head))
    last = chain.blocks[-1]
    assert "head.0" in last.module_paths  # a leaf: no functional batch_norm left
    adapted = adapt_input(last.module, last.in_shape, 5)
    bn = adapted.get_submodule("head.0")
    assert type(bn) is BatchNormAct and bn.num_features == 5
    assert isinstance(bn.act, nn.LeakyReLU) and bn.act.negative_slope == 0.2
    assert output_shape(adapted, (1, 5, 16, 16)) == (1, 10)


@pytest.mark.parametrize("norm", [BatchNormAct(8, nn.ReLU()), GroupNormAct(2, 8)])
def test_a_plan_narrows_the_block_before_a_norm_act_head(norm) -> None:
    chain = _exact(Net([Basic(8)], _pool_head(8, norm)))
    plan = make_plan(chain, "dwconv", 0.5)
    assert plan.steps[-2].recast and plan.steps[-2].out_channels == 4  # not kept at 8
    student = plan.build_student().eval()
    assert student(torch.randn(1, 3, 16, 16)).shape == (1, 10)


def test_adapt_passes_any_elementwise_activation() -> None:
    acts = [nn.LeakyReLU(), nn.ELU(), nn.Mish(), nn.Hardsigmoid(), nn.Softplus(), nn.PReLU()]
    chain = _exact(Net([Basic(8)], _pool_head(8, nn.BatchNorm2d(8), *acts)))
    head = chain.blocks[-1]
    assert output_shape(adapt_input(head.module, head.in_shape, 4), (1, 4, 16, 16)) == (1, 10)


def test_functional_activations_pass_through_adapt_too() -> None:
    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm2d(8)
            self.fc = nn.Linear(8, 10)

        def forward(self, x):
            x = F.leaky_relu(self.bn(x), 0.1).sigmoid()
            return self.fc(F.hardtanh(x).mean((2, 3)))

    chain = _exact(Net([Basic(8)], Head()))
    head = chain.blocks[-1]
    assert output_shape(adapt_input(head.module, head.in_shape, 4), (1, 4, 16, 16)) == (1, 10)


def test_a_per_channel_prelu_is_rebuilt_and_its_readers_too() -> None:
    chain = _exact(Net([Basic(8)], _pool_head(8, nn.BatchNorm2d(8), nn.PReLU(8))))
    head = chain.blocks[-1]
    adapted = adapt_input(head.module, head.in_shape, 4)
    assert adapted.get_submodule("head.1").weight.shape == (4,)
    assert output_shape(adapted, (1, 4, 16, 16)) == (1, 10)


def test_weight_standardised_same_padded_conv_keeps_its_class_and_output_size() -> None:
    class Transition(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = StdConv(8, 16, 3, stride=2)
            self.bn = BatchNormAct(16, nn.ReLU())

        def forward(self, x):
            return self.bn(self.conv(x))

    net = Net([Basic(8), Transition(), Basic(16)], _pool_head(16))
    chain = _exact(net, (1, 3, 15, 15))  # odd size: "same" padding is asymmetric
    transition = next(b for b in chain.blocks if "blocks.1.conv" in b.module_paths)
    adapted = adapt_input(transition.module, transition.in_shape, 4)
    conv = adapted.get_submodule("blocks.1.conv")
    assert type(conv) is StdConv and conv.in_channels == 4
    assert output_shape(adapted, (1, 4, 15, 15)) == transition.out_shape


def test_same_padding_helper_in_a_block_walks_exactly() -> None:
    class SamePadBlock(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3, stride=2)

        def forward(self, x):
            return F.relu(self.conv(pad_same(x, 3, 2)))

    chain = _exact(Net([Basic(8), SamePadBlock(8), Basic(8)], _pool_head(8)), (1, 3, 15, 15))
    assert chain.kinds()["basic"] == 2


class SelectiveKernel(nn.Module):
    """Two 3x3 paths mixed by a softmax over paths of a pooled summary (SKNet)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.paths = nn.ModuleList([nn.Conv2d(c, c, 3, padding=d, dilation=d) for d in (1, 2)])
        self.reduce = nn.Conv2d(c, 4, 1)
        self.select = nn.Conv2d(4, 2 * c, 1)

    def forward(self, x):
        paths = torch.stack([p(x) for p in self.paths], dim=1)  # (N, 2, C, H, W)
        attn = self.select(F.relu(self.reduce(paths.sum(1).mean((2, 3), keepdim=True))))
        attn = attn.view(x.shape[0], 2, -1, 1, 1).softmax(dim=1)
        return (paths * attn).sum(1)


class GlobalContext(nn.Module):
    """A softmax over positions pools the map; the context gates it (GCNet)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.attn = nn.Conv2d(c, 1, 1)
        self.mlp = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        weights = F.softmax(self.attn(x).reshape(b, 1, h * w), dim=-1).unsqueeze(3)
        context = (x.reshape(b, c, h * w).unsqueeze(1) @ weights).view(b, c, 1, 1)
        return x * torch.sigmoid(self.mlp(context))


@pytest.mark.parametrize("gate", [SelectiveKernel, GlobalContext])
def test_a_softmax_gate_is_not_attention(gate) -> None:
    class Block(Basic):
        def __init__(self, c: int) -> None:
            super().__init__(c)
            self.conv1 = gate(c) if gate is SelectiveKernel else self.conv1
            self.mid = gate(c) if gate is GlobalContext else self.mid

    chain = _exact(Net([Block(8), Block(8)], _pool_head(8)))
    assert chain.kinds()["basic"] == 2
    assert make_plan(chain, "dwconv", 0.5).recast_steps()


def test_a_blur_pool_is_a_pool_not_a_conv() -> None:
    class BlurPool(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            k = torch.tensor([1.0, 2.0, 1.0])
            self.register_buffer("filt", (k[:, None] * k[None, :] / 16).expand(c, 1, 3, 3))
            self.c = c

        def forward(self, x):
            return F.conv2d(F.pad(x, [1, 1, 1, 1], "reflect"), self.filt, groups=self.c)

    chain = _exact(Net([Basic(8, mid=BlurPool(8)), Basic(8)], _pool_head(8)))
    assert chain.kinds()["basic"] == 2


def test_res2net_scales_make_a_bottleneck() -> None:
    class Res2(nn.Module):
        def __init__(self, c: int, scales: int = 3) -> None:
            super().__init__()
            w = 4
            self.conv1 = nn.Conv2d(c, w * scales, 1)
            self.convs = nn.ModuleList([nn.Conv2d(w, w, 3, padding=1)
                                        for _ in range(scales - 1)])
            self.conv3 = nn.Conv2d(w * scales, c, 1)
            self.w = w

        def forward(self, x):
            parts = torch.split(F.relu(self.conv1(x)), self.w, 1)
            outs, sp = [], None
            for i, conv in enumerate(self.convs):
                sp = parts[i] if sp is None else sp + parts[i]
                sp = F.relu(conv(sp))
                outs.append(sp)
            outs.append(parts[-1])
            return F.relu(self.conv3(torch.cat(outs, 1)) + x)

    chain = _exact(Net([Res2(8), Res2(8)], _pool_head(8)))
    assert chain.kinds()["bottleneck"] == 2


class UIR(nn.Module):
    """MobileNetV4's universal inverted residual: optional depthwise convs at the start
    and in the middle around the 1x1 expansion and projection."""

    def __init__(self, c: int, start: bool, middle: bool) -> None:
        super().__init__()
        self.dw_start = nn.Conv2d(c, c, 3, padding=1, groups=c) if start else nn.Identity()
        self.pw_exp = nn.Conv2d(c, 4 * c, 1)
        self.dw_mid = nn.Conv2d(4 * c, 4 * c, 3, padding=1, groups=4 * c) if middle \
            else nn.Identity()
        self.pw_proj = nn.Conv2d(4 * c, c, 1)

    def forward(self, x):
        y = F.relu(self.dw_mid(F.relu(self.pw_exp(self.dw_start(x)))))
        return self.pw_proj(y) + x


def test_an_extra_depthwise_uir_is_an_inverted_residual_of_the_expanded_width() -> None:
    chain = _exact(Net([UIR(8, True, True), UIR(8, True, True)], _pool_head(8)))
    block = _block(chain, "inverted_residual")
    assert chain.kinds()["inverted_residual"] == 2 and block.mid_channels == 32


def test_a_depthwise_then_pointwise_mlp_uir_is_convnext_like() -> None:
    chain = _exact(Net([UIR(8, True, False), UIR(8, True, False)], _pool_head(8)))
    assert chain.kinds()["convnext"] == 2
    assert make_plan(chain, "dwconv", 0.5).recast_steps()


class MixedConv(nn.Module):
    """MixNet's MixedConv2d: channel chunks, one conv (kernel 3, 5, ...) each, cat."""

    def __init__(self, c_in: int, c_out: int, kernels: tuple[int, ...], depthwise: bool) -> None:
        super().__init__()
        self.splits = [c_in // len(kernels)] * len(kernels)
        out = c_out // len(kernels)
        self.convs = nn.ModuleList([
            nn.Conv2d(s, out, k, padding=k // 2, groups=s if depthwise else 1)
            for s, k in zip(self.splits, kernels)])

    def forward(self, x):
        chunks = torch.split(x, self.splits, 1)
        return torch.cat([conv(chunks[i]) for i, conv in enumerate(self.convs)], 1)


def test_mixed_convs_make_one_inverted_residual_of_the_whole_width() -> None:
    class MixedBlock(nn.Module):  # no shortcut: in 8, out 16
        def __init__(self) -> None:
            super().__init__()
            self.conv_pw = MixedConv(8, 32, (1, 1), False)
            self.bn1 = nn.BatchNorm2d(32)
            self.conv_dw = MixedConv(32, 32, (3, 5), True)
            self.bn2 = nn.BatchNorm2d(32)
            self.conv_pwl = MixedConv(32, 16, (1, 1), False)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv_pw(x)))
            return self.conv_pwl(F.relu(self.bn2(self.conv_dw(x))))

    chain = _exact(Net([MixedBlock(), Basic(16)], _pool_head(16)))
    block = _block(chain, "inverted_residual")
    assert (block.in_channels, block.mid_channels, block.out_channels) == (8, 32, 16)
    plan = make_plan(chain, "dwconv", 0.5)
    assert plan.steps[block.index].recast


def test_a_squeeze_excitation_mid_block_hides_no_later_conv() -> None:
    class NormFree(nn.Module):  # NFNet: x * beta, 1x1, 3x3, SE, 1x1, out * alpha + x
        def __init__(self, c: int) -> None:
            super().__init__()
            self.conv1, self.conv3 = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c // 2, c, 1)
            self.conv2 = nn.Conv2d(c // 2, c // 2, 3, padding=1)
            self.fc1, self.fc2 = nn.Conv2d(c // 2, 2, 1), nn.Conv2d(2, c // 2, 1)

        def forward(self, x):
            out = self.conv2(F.relu(self.conv1(F.relu(x) * 0.5)))
            out = out * torch.sigmoid(self.fc2(F.relu(self.fc1(out.mean((2, 3), keepdim=True)))))
            return self.conv3(F.relu(out)) * 0.2 + x

    chain = _exact(Net([NormFree(8), NormFree(8)], _pool_head(8)))
    block = _block(chain, "bottleneck")
    assert chain.kinds()["bottleneck"] == 2 and block.mid_channels == 4
