"""Ridge least squares for convs (recast/least_squares.py): known convs recovered from
their outputs, and fits installed under a BN."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recast.errors import RecastError
from recast.least_squares import apply_conv, fit_conv, fit_convs, install_linear_fit, \
    principal_filters


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 1), (3, 2, 1), (1, 1, 0)],
                         ids=["3x3-stride1", "3x3-stride2", "1x1"])
def test_fit_conv_recovers_a_known_conv_from_its_outputs(kernel, stride, padding):
    conv = nn.Conv2d(3, 5, kernel, stride, padding)
    original = copy.deepcopy(conv.state_dict())
    x = torch.randn(4, 3, 9, 9)
    with torch.no_grad():
        y = conv(x)
    weight, bias = fit_conv(conv, x, y, ridge=0.0)
    assert weight.shape == conv.weight.shape and bias.shape == (5,)
    torch.testing.assert_close(weight, conv.weight.detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(bias, conv.bias.detach(), atol=1e-5, rtol=0)
    for name, value in conv.state_dict().items():  # only read
        assert torch.equal(value, original[name])


def test_fit_convs_recovers_two_convs_whose_outputs_add_up():
    """A main path's 3x3 conv and a stride-2 1x1 shortcut, as in a residual block."""
    main, side = nn.Conv2d(5, 6, 3, 1, 1, bias=False), nn.Conv2d(3, 6, 1, 2, bias=False)
    hidden, x, bias = torch.randn(4, 5, 5, 5), torch.randn(4, 3, 10, 10), torch.randn(6)
    with torch.no_grad():
        y = main(hidden) + side(x) + bias.view(1, -1, 1, 1)
    (main_weight, side_weight), got_bias = fit_convs([(main, hidden), (side, x)], y, ridge=0.0)
    torch.testing.assert_close(main_weight, main.weight.detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(side_weight, side.weight.detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(got_bias, bias, atol=1e-5, rtol=0)


def test_fit_conv_refuses_a_grouped_conv():
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=2)
    with pytest.raises(RecastError, match="groups"):
        fit_conv(conv, torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6))


def _fit_pair():
    conv, bn = nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)
    weight, bias = torch.randn(6, 3, 3, 3), torch.randn(6)
    return conv, bn, weight, bias, 2 + 3 * torch.randn(8, 3, 10, 10)


def test_install_linear_fit_makes_bn_conv_the_fit_in_eval_mode():
    conv, bn, weight, bias, x = _fit_pair()
    install_linear_fit(conv, bn, weight, bias, x)
    held_out = 2 + 3 * torch.randn(4, 3, 10, 10)
    with torch.no_grad():
        got = bn.eval()(conv(held_out))
    torch.testing.assert_close(got, F.conv2d(held_out, weight, bias, padding=1),
                               atol=1e-4, rtol=1e-5)


def test_install_linear_fit_holds_in_train_mode_on_the_same_batch():
    conv, bn, weight, bias, x = _fit_pair()
    install_linear_fit(conv, bn, weight, bias, x)
    with torch.no_grad():
        got = bn.train()(conv(x))
    torch.testing.assert_close(got, F.conv2d(x, weight, bias, padding=1), atol=1e-3, rtol=1e-4)


def test_install_linear_fit_without_bn_uses_the_conv_bias():
    conv = nn.Conv2d(3, 6, 3, padding=1)
    weight, bias, x = torch.randn(6, 3, 3, 3), torch.randn(6), torch.randn(2, 3, 5, 5)
    install_linear_fit(conv, None, weight, bias, x)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), F.conv2d(x, weight, bias, padding=1))


def test_fit_convs_ridges_each_path_by_its_own_scale():
    """A shortcut reading inputs a hundredth the scale of the main path's is not shrunk
    by a ridge sized to the main path's features."""
    main, side = nn.Conv2d(5, 6, 3, 1, 1, bias=False), nn.Conv2d(3, 6, 1, 2, bias=False)
    hidden, x = torch.randn(16, 5, 5, 5), 0.01 * torch.randn(16, 3, 10, 10)
    with torch.no_grad():
        side.weight.mul_(100)  # the small input matters as much as the main path
        y = main(hidden) + side(x)
    (_, side_weight), _ = fit_convs([(main, hidden), (side, x)], y)
    assert float((side_weight - side.weight).norm() / side.weight.norm()) < 0.01


def test_principal_filters_span_a_low_rank_linear_target_and_skip_empty_directions():
    """Targets that vary along two directions only: two filters, whose outputs give
    the targets back linearly; the other directions are not filled with noise."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 7, 3, 2, 1, bias=False)  # the hidden conv whose shape is taken
    x, mixing = torch.randn(8, 3, 10, 10), torch.randn(6, 2)
    with torch.no_grad():
        sources = nn.Conv2d(3, 2, 3, 2, 1, bias=False)(x)
        y = torch.einsum("oc,nchw->nohw", mixing, sources)
    state = torch.random.get_rng_state()
    filters = principal_filters(conv, x, y, count=5, ridge=0.0)
    assert torch.equal(torch.random.get_rng_state(), state)  # a resumed run replays it
    assert filters.shape == (2, 3, 3, 3)
    hidden = apply_conv(conv, x, filters, None)
    weight, bias = fit_conv(nn.Conv2d(2, 6, 1, bias=False), hidden, y, ridge=0.0)
    refit = apply_conv(nn.Conv2d(2, 6, 1), hidden, weight, bias)
    assert float(F.mse_loss(refit, y)) < 1e-8 * float(y.var())


def test_principal_filters_come_in_order_of_the_variance_they_explain():
    torch.manual_seed(1)
    conv = nn.Conv2d(4, 3, 1, bias=False)
    x = torch.randn(16, 4, 6, 6)
    y = torch.cat([3 * x[:, :1], 0.1 * x[:, 1:2], x[:, 2:3]], 1)
    filters = principal_filters(conv, x, y, count=3, ridge=0.0)
    scales = apply_conv(conv, x, filters, None).transpose(0, 1).flatten(1).std(dim=1)
    assert scales.tolist() == sorted(scales.tolist(), reverse=True)
    torch.testing.assert_close(scales, torch.tensor([3.0, 1.0, 0.1]), rtol=0.1, atol=0)


def test_principal_filters_keep_the_conv_dtype():
    conv = nn.Conv2d(3, 4, 3, 1, 1, bias=False).double()
    x = torch.randn(4, 3, 6, 6, dtype=torch.float64)
    filters = principal_filters(conv, x, torch.randn(4, 2, 6, 6, dtype=torch.float64), 2)
    assert filters.dtype == torch.float64 and filters.shape == (2, 3, 3, 3)
