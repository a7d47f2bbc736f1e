"""Channel-pruning reconstruction of warm-started targets (recast/reconstruct.py)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from blocks import BasicBlock, ConvBlock
from blocks.conv import warm_conv
from recast.models import build_model
from recast.reconstruct import copied_rows, reconstruct_inputs
from recast.walker import walk

pytestmark = pytest.mark.usefixtures("one_thread")


def test_copied_rows_finds_the_teacher_filters_a_sliced_copy_came_from():
    torch.manual_seed(0)
    teacher = torch.randn(8, 6, 3, 3)
    in_idx, rows = torch.tensor([4, 0, 5]), torch.tensor([7, 2, 3])
    assert torch.equal(copied_rows(teacher[rows][:, in_idx], teacher, in_idx), rows)
    assert copied_rows(torch.randn(3, 3, 3, 3), teacher, in_idx) is None
    assert copied_rows(teacher[rows][:, in_idx], teacher, in_idx[:2]) is None  # widths


def _vgg_block(index: int):
    torch.manual_seed(0)
    model = build_model("vgg11", width=0.25)
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_var.uniform_(0.5, 2.0)
    return walk(model.eval(), (1, 3, 32, 32)).blocks[index]


def test_reconstruct_inputs_gives_back_what_the_dropped_inputs_carried():
    """A conv warm-started on half its inputs misses their share of every output;
    re-solved on the kept half it comes closer, on images it was not fitted to too."""
    block = _vgg_block(2)
    conv = next(m for m in block.module.modules() if isinstance(m, nn.Conv2d))
    in_idx = torch.arange(0, block.in_channels, 2)
    target = ConvBlock(len(in_idx), block.out_channels // 2)
    out_idx = warm_conv(block.module, target, in_idx)
    # inputs whose channels are correlated, as real features are: a linear map of
    # the kept ones can stand in for the dropped ones
    mixing = torch.randn(block.in_channels, 4)
    fitted, held_out = (torch.einsum("ck,nkhw->nchw", mixing, torch.randn(n, 4, 16, 16))
                        + 0.1 * torch.randn(n, block.in_channels, 16, 16) for n in (64, 16))

    def error(x):
        with torch.no_grad():
            return float(F.mse_loss(target.conv(x[:, in_idx]), conv(x)[:, out_idx]))

    before = error(held_out)
    result = reconstruct_inputs(block.module, target, fitted[:, in_idx], fitted, in_idx)
    assert result["solved"] == 1.0 and result["mse_after"] < 0.1 * result["mse_before"]
    assert error(held_out) < 0.1 * before


def test_reconstruct_inputs_leaves_a_target_no_warm_start_filled():
    block = _vgg_block(2)
    torch.manual_seed(1)
    target = BasicBlock(block.in_channels // 2, block.out_channels // 2)
    state = {k: v.clone() for k, v in target.state_dict().items()}
    x = torch.randn(8, block.in_channels, 16, 16)
    in_idx = torch.arange(block.in_channels // 2)
    assert reconstruct_inputs(block.module, target, x[:, in_idx], x, in_idx) == {}
    assert all(torch.equal(v, state[k]) for k, v in target.state_dict().items())


class _InPlaceConvBlock(nn.Module):
    """conv -> BN -> in-place ReLU, as torchvision's VGG writes it."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


def test_reconstruct_inputs_fits_the_conv_output_before_an_in_place_relu():
    """The hook's copy is the conv's output, not what the ReLU left of it in place."""
    from torch import fx

    torch.manual_seed(0)
    teacher = _InPlaceConvBlock(8, 6).eval()
    source = fx.symbolic_trace(teacher)
    in_idx = torch.arange(0, 8, 2)
    target = ConvBlock(len(in_idx), 3)
    out_idx = warm_conv(source, target, in_idx)
    mixing = torch.randn(8, 3)
    x = torch.einsum("ck,nkhw->nchw", mixing, torch.randn(32, 3, 8, 8))
    result = reconstruct_inputs(source, target, x[:, in_idx], x, in_idx)
    with torch.no_grad():
        expected = teacher.conv(x)[:, out_idx]
        assert (expected < 0).any()
        assert float(F.mse_loss(target.conv(x[:, in_idx]), expected)) < \
            0.1 * result["mse_before"]


def test_a_conv_started_from_a_basic_blocks_shortcut_is_left_alone():
    """Its 1x1 weights sit in a 3x3 centre tap, no copy of a teacher filter; the
    teacher's second conv, which does not read the block input, is not tried."""
    from blocks.conv import warm_conv_from_basic

    torch.manual_seed(0)
    chain = walk(build_model("resnet20", width=0.25).eval(), (1, 3, 32, 32))
    block = next(b for b in chain.blocks if b.kind == "basic" and b.out_channels > b.in_channels)
    in_idx = torch.arange(block.in_channels // 2)
    target = ConvBlock(len(in_idx), block.out_channels // 2, block.stride)
    warm_conv_from_basic(block.module, target, in_idx)
    x = torch.randn(4, block.in_channels, *block.in_shape[2:])
    assert reconstruct_inputs(block.module, target, x[:, in_idx], x, in_idx) == {}
