"""Closed-form warm starts (recast/solve.py): each test one situation, tiny models."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from blocks import BasicBlock, ConvBlock
from recast.bn_statistics import match_batch_statistics, recalibrate_bn
from recast.errors import RecastError
from recast.models import build_model
from recast.solve import activation_tail, fit_next_conv, preactivation, solve_block
from recast.walker import walk

try:  # the shortcut warm start lives with the conv block kind (formerly recast.warmstart)
    from blocks.conv import warm_conv_from_basic
except ImportError:
    from recast.warmstart import warm_conv_from_basic


pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise_bn(module: nn.Module) -> None:
    """BN statistics and affine parts that are not the identity, as after training."""
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.3, 0.3)


def _images(data_set, count: int, mean, std) -> torch.Tensor:
    scale = torch.tensor(std).view(1, -1, 1, 1) * 255
    return (data_set.images[:count].float() - torch.tensor(mean).view(1, -1, 1, 1) * 255) / scale


@pytest.fixture(scope="module")
def resnet_chain():
    model = build_model("resnet20", width=0.25)
    _randomise_bn(model)
    return model.eval(), walk(model, (1, 3, 32, 32))


def test_preactivation_of_a_conv_bn_relu_maxpool_block_is_bn_before_the_pool():
    model = build_model("vgg11", width=0.25)
    _randomise_bn(model)
    chain = walk(model.eval(), (1, 3, 32, 32))
    block = next(b for b in chain.blocks if b.kind == "conv" and b.tail is not None)
    x = torch.randn(2, *block.in_shape[1:])
    layer = model.get_submodule(block.name)  # conv, bn, relu
    with torch.no_grad():
        pre = preactivation(block.module, x)
        torch.testing.assert_close(pre, layer.bn(layer.conv(x)))
        assert pre.shape[-1] == x.shape[-1] > block.out_shape[-1]  # before the pool
        assert (pre < 0).any()
        torch.testing.assert_close(activation_tail(block.module)(pre), block.module(x))


@pytest.mark.parametrize("index", [1, 4], ids=["identity-shortcut", "projection-shortcut"])
def test_preactivation_of_a_post_activation_basic_block_is_main_plus_shortcut(resnet_chain,
                                                                              index):
    model, chain = resnet_chain
    block = chain.blocks[index]
    root = model.get_submodule(block.name)
    x = torch.randn(2, *block.in_shape[1:])
    with torch.no_grad():
        main = root.bn2(root.conv2(F.relu(root.bn1(root.conv1(x)))))
        shortcut = x if root.downsample is None else root.downsample(x)
        pre = preactivation(block.module, x)
        torch.testing.assert_close(pre, main + shortcut)
        torch.testing.assert_close(activation_tail(block.module)(pre), block.module(x))


def test_preactivation_of_a_block_without_a_final_activation_is_its_output(resnet_chain):
    stem = resnet_chain[1].blocks[0]  # a bare conv
    x = torch.randn(2, *stem.in_shape[1:])
    with torch.no_grad():
        torch.testing.assert_close(preactivation(stem.module, x), stem.module(x))
    assert activation_tail(stem.module) is None


class _InPlace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(F.relu(self.conv(x), inplace=True))


def test_preactivation_is_not_overwritten_by_an_in_place_relu():
    module = _InPlace().eval()
    traced = fx.symbolic_trace(module)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        pre = preactivation(traced, x)
        torch.testing.assert_close(pre, module.conv(x))
        torch.testing.assert_close(activation_tail(traced)(pre), module(x))


@pytest.fixture(scope="module")
def trained_chain(small_data):
    """ResNet-20 at width 0.25 after 40 SGD steps on real images: non-random weights."""
    from recast.datasets import BatchLoader

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the thresholds below were measured on one thread
    torch.manual_seed(0)
    model = build_model("resnet20", width=0.25).train()
    opt = torch.optim.SGD(model.parameters(), 0.05, momentum=0.9, nesterov=True)
    loader = BatchLoader(small_data.train, small_data.mean, small_data.std, 32, seed=0)
    for _, (x, y) in zip(range(40), loader):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    fit = _images(small_data.train, 200, small_data.mean, small_data.std)
    held_out = _images(small_data.test, 200, small_data.mean, small_data.std)
    torch.set_num_threads(threads)
    return walk(model.eval(), (1, 3, 32, 32)), fit, held_out


def _inputs(chain, index: int, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        for block in chain.blocks[:index]:
            x = block.module(x)
    return x


@pytest.mark.parametrize("index", [2, 4], ids=["identity-shortcut", "projection-shortcut"])
def test_solve_block_beats_the_shortcut_warm_start_on_held_out_images(trained_chain, index):
    chain, fit, held_out = trained_chain
    block = chain.blocks[index]
    target = ConvBlock(block.in_channels, block.out_channels, block.stride)
    out_idx = warm_conv_from_basic(block.module, target, torch.arange(block.in_channels))
    x_fit, x_test = _inputs(chain, index, fit), _inputs(chain, index, held_out)

    def relative_mse() -> float:
        with torch.no_grad():
            expected = preactivation(block.module, x_test)[:, out_idx]
            return float(F.mse_loss(target.eval().bn(target.conv(x_test)), expected)
                         / expected.var())

    shortcut = relative_mse()
    result = solve_block(block.module, target, x_fit, x_fit, out_idx)
    assert result["solved"] == 1.0 and result["mse_after"] < result["mse_before"]
    # measured on AVX2: 0.63 -> 0.10, 0.43 -> 0.09; on AVX512, whose rounding sends the
    # 40 training steps of the chain elsewhere: 0.44 -> 0.17 for the projection block
    assert relative_mse() < shortcut / 2


@pytest.mark.parametrize("index", [1, 4], ids=["identity-shortcut", "projection-shortcut"])
def test_solve_block_recovers_a_basic_block_from_its_first_conv(resnet_chain, index):
    """With conv1 and bn1 the teacher's, the rest is linear in what they give: conv2
    through an identity, or conv2 and a random projection shortcut fitted at once."""
    model, chain = resnet_chain
    block = chain.blocks[index]
    teacher = model.get_submodule(block.name)
    basic = BasicBlock(block.in_channels, block.out_channels, block.stride)
    basic.conv1.load_state_dict(teacher.conv1.state_dict())
    basic.bn1.load_state_dict(teacher.bn1.state_dict())
    assert isinstance(basic.shortcut, nn.Sequential) is (index == 4)
    x = torch.randn(16, *block.in_shape[1:])
    source = copy.deepcopy(block.module)
    match_batch_statistics(source, x)  # the fit gives its target the inputs' statistics too
    result = solve_block(source, nn.Sequential(basic, nn.Identity()), x, x, ridge=1e-8)
    assert result["mse_after"] < 1e-6 * result["teacher_var"] < result["mse_before"]


def test_a_fit_not_kept_leaves_the_block_as_it_came(resnet_chain, monkeypatch):
    import recast.solve

    block = resnet_chain[1].blocks[4]
    target = BasicBlock(block.in_channels, block.out_channels, block.stride)
    before = copy.deepcopy(target.state_dict())
    monkeypatch.setattr(recast.solve, "keeps_fit", lambda before, after: False)
    result = solve_block(block.module, target, *[torch.randn(8, *block.in_shape[1:])] * 2)
    assert result["solved"] == 0.0
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())
    assert not any(m._forward_pre_hooks for m in target.modules())  # no hook left behind


def _preactivation_mse(target: BasicBlock, x, expected, train: bool) -> float:
    block = copy.deepcopy(target).train(train)
    with torch.no_grad():
        main = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
        return float(F.mse_loss(main + block.shortcut(x), expected))


def test_match_batch_statistics_makes_eval_mode_compute_what_train_mode_does():
    block = BasicBlock(4, 6, 2).eval()
    with torch.no_grad():
        block.conv1.weight.mul_(0.05)  # outputs far from BN's initial variance of 1
    x = 1 + torch.randn(8, 4, 8, 8)
    match_batch_statistics(block, x)
    assert not any(m.training for m in block.modules())
    assert all(int(m.num_batches_tracked) == 0 for m in (block.bn1, block.bn2))
    with torch.no_grad():
        torch.testing.assert_close(block(x), copy.deepcopy(block).train()(x),
                                   atol=1e-3, rtol=1e-3)


def test_solve_block_fits_a_random_basic_block_on_the_features_training_sees(resnet_chain):
    """A random conv1 and projection shortcut keep BN's initial statistics: fitted
    through them, conv2 missed in train mode (DenseNet -> basic, recast/solve.py)."""
    model, chain = resnet_chain
    block = chain.blocks[4]
    torch.manual_seed(0)
    target = BasicBlock(block.in_channels, block.out_channels, block.stride)
    with torch.no_grad():
        target.conv1.weight.mul_(0.1)
        target.shortcut[0].weight.mul_(0.1)
    x = torch.randn(32, *block.in_shape[1:])
    with torch.no_grad():
        expected = preactivation(block.module, x)
    before = _preactivation_mse(target, x, expected, train=True)
    result = solve_block(block.module, target, x, x)
    assert result["solved"] == 1.0
    in_train = _preactivation_mse(target, x, expected, train=True)
    assert in_train == pytest.approx(result["mse_after"], rel=0.02)
    assert in_train < before  # measured 3.98 -> 2.31


@pytest.mark.parametrize("index", [3, 4], ids=["identity-shortcut", "projection-shortcut"])
def test_principal_hidden_lets_a_fresh_basic_target_fit_closer(resnet_chain, index):
    """A fresh target's random conv1 gives conv2 little to build on; its principal
    directions (fit_hidden) let the same fit get closer, in train mode too."""
    model, chain = resnet_chain
    block = chain.blocks[index]
    torch.manual_seed(0)
    x = torch.randn(32, *block.in_shape[1:])
    with torch.no_grad():
        expected = preactivation(block.module, x)
    fresh = BasicBlock(block.in_channels, block.out_channels, block.stride)
    principal = copy.deepcopy(fresh)
    plain = solve_block(block.module, fresh, x, x)
    state = torch.random.get_rng_state()
    fitted = solve_block(block.module, principal, x, x, fit_hidden=True)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert plain["solved"] == fitted["solved"] == 1.0
    assert fitted["mse_before"] == pytest.approx(plain["mse_before"])
    assert fitted["mse_after"] < 0.95 * plain["mse_after"]  # measured 0.63-0.67x, 0.83-0.87x
    in_train = _preactivation_mse(principal, x, expected, train=True)
    assert in_train == pytest.approx(fitted["mse_after"], rel=0.02)
    weights = principal.conv1.weight
    torch.testing.assert_close(weights[1::2][:len(weights) // 2],
                               -weights[0::2][:len(weights) // 2])  # signed pairs


class _RankOneTeacher(nn.Module):
    """A teacher block whose output varies along one spatial pattern beyond a 1x1 map."""

    def __init__(self) -> None:
        super().__init__()
        self.spatial = nn.Conv2d(4, 1, 3, 1, 1, bias=False)
        self.mixing = nn.Conv2d(1, 5, 1, bias=False)

    def forward(self, x):
        return self.mixing(self.spatial(x))


def test_principal_hidden_fills_pairs_for_the_directions_there_are_and_leaves_the_rest():
    """Odd width, one direction to add: conv1's first two filters become it and its
    negation at the random filters' mean norm; the other three stay as built."""
    torch.manual_seed(0)
    source = fx.symbolic_trace(_RankOneTeacher())
    target = BasicBlock(4, 5)  # a projection shortcut: 4 -> 5 channels
    built = target.conv1.weight.detach().clone()
    x = torch.randn(16, 4, 8, 8)
    result = solve_block(source, target, x, x, fit_hidden=True)
    weight = target.conv1.weight.detach()
    assert result["solved"] == 1.0
    torch.testing.assert_close(weight[1], -weight[0])
    assert not torch.equal(weight[0], built[0])
    assert torch.equal(weight[2:], built[2:])
    mean_norm = built.flatten(1).norm(dim=1).mean()
    torch.testing.assert_close(weight[0].norm(), mean_norm)


def test_a_principal_fit_not_kept_falls_back_to_the_plain_fit(resnet_chain, monkeypatch):
    import recast.solve

    block = resnet_chain[1].blocks[4]
    torch.manual_seed(0)
    x = torch.randn(16, *block.in_shape[1:])
    target = BasicBlock(block.in_channels, block.out_channels, block.stride)
    plain = copy.deepcopy(target)
    solve_block(block.module, plain, x, x)
    verdicts = iter([False, True])  # the principal fit refused, then the plain one kept
    monkeypatch.setattr(recast.solve, "keeps_fit", lambda before, after: next(verdicts))
    result = solve_block(block.module, target, x, x, fit_hidden=True)
    assert result["solved"] == 1.0
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(target.state_dict()[name], value)


def test_solve_block_leaves_every_module_in_the_mode_it_found_it(resnet_chain):
    block = resnet_chain[1].blocks[1]
    target = ConvBlock(block.in_channels, block.out_channels).train()
    target.bn.eval()
    block.module.eval()
    x = torch.randn(4, *block.in_shape[1:])
    solve_block(block.module, target, x, x)
    assert target.training and target.conv.training and not target.bn.training
    assert not any(m.training for m in block.module.modules())
    assert int(target.bn.num_batches_tracked) == 0  # no train-mode forward ran


def test_fit_next_conv_beats_slicing_after_top_l1_selection(small_data):
    torch.manual_seed(0)
    first = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                          nn.ReLU())
    conv, bn = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
    _randomise_bn(first)
    _randomise_bn(bn)
    first.eval()
    bn.eval()
    keep = first[0].weight.abs().flatten(1).sum(1).topk(4).indices.sort().values
    sliced, sliced_bn = nn.Conv2d(4, 8, 3, padding=1, bias=False), copy.deepcopy(bn)
    with torch.no_grad():
        sliced.weight.copy_(conv.weight[:, keep])
    fitted, fitted_bn = copy.deepcopy(sliced), copy.deepcopy(sliced_bn)
    mean, std = small_data.mean, small_data.std
    with torch.no_grad():
        train = first(_images(small_data.train, 200, mean, std))
        test = first(_images(small_data.test, 200, mean, std))
    result = fit_next_conv(fitted, fitted_bn, conv, train[:, keep], train)

    def error(student: nn.Conv2d, student_bn: nn.Module) -> float:
        with torch.no_grad():
            return float(F.mse_loss(student_bn(student(test[:, keep])), bn(conv(test))))

    assert result["mse_after"] < result["mse_before"]
    assert error(fitted, fitted_bn) < 0.5 * error(sliced, sliced_bn)


def _calibration_model() -> nn.Sequential:
    # dropout before the BN: were it on during calibration, the statistics would be off
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.Dropout(0.9), nn.BatchNorm2d(4),
                         nn.ReLU(), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2, momentum=0.3))


def test_recalibrate_bn_moves_running_statistics_to_the_data():
    model = _calibration_model().eval()
    batches = [(3 + 2 * torch.randn(16, 3, 8, 8), torch.zeros(16)) for _ in range(5)]
    assert recalibrate_bn(model, batches) == 80
    with torch.no_grad():
        z = model[0](torch.cat([x for x, _ in batches])).transpose(0, 1).flatten(1)
    torch.testing.assert_close(model[2].running_mean, z.mean(1), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(model[2].running_var, z.var(1), atol=0, rtol=0.03)


def test_recalibrate_bn_restores_modes_and_momentum():
    model = _calibration_model().train()
    model[5].eval()
    batches = [torch.randn(8, 3, 8, 8) for _ in range(4)]
    assert recalibrate_bn(model, batches, max_batches=2) == 16
    assert [m.training for m in model] == [True, True, True, True, True, False]
    assert model.training and model[2].momentum == 0.1 and model[5].momentum == 0.3


def test_recalibrate_bn_refuses_an_empty_loader():
    model = _calibration_model()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(RecastError, match="no batches"):
        recalibrate_bn(model, [])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def _bottleneck_step(choose: bool):
    from recast.plan import make_plan
    from recast.step_fit import solve_step
    from recast.surgery import StudentSurgery

    plan = make_plan(walk(build_model("resnet29", width=0.25)), "conv", 1.0)
    surgery = StudentSurgery(plan, "teacher", torch.device("cpu"), fit_steps=[1] if choose else [])
    step = plan.steps[1]
    assert step.out_channels < step.block.out_channels  # the bottleneck's mid width
    _, last = surgery.install(1)
    teacher = nn.ModuleList(b.module for b in plan.chain.blocks).eval()
    return solve_step(surgery, teacher, 1, last, torch.randn(16, 3, 32, 32), "target")


def test_a_bottleneck_to_conv_step_without_chosen_channels_skips_the_fit() -> None:
    """bottleneck -> conv targets give the bottleneck's mid width, no subset of its
    outputs: without chosen channels the step skips the fit instead of failing."""
    assert _bottleneck_step(choose=False) == {}


def test_with_chosen_channels_a_bottleneck_to_conv_step_is_fitted_to_them() -> None:
    fit = _bottleneck_step(choose=True)
    assert fit["mse_after"] < fit["mse_before"]


def test_the_engine_chooses_channels_only_for_a_closed_form_start_from_the_teacher() -> None:
    from recast.engine import Recaster
    from recast.plan import make_plan
    from recast.presets import make_config

    dense = make_plan(walk(build_model("densenet_bc_40_12", width=0.25)), "basic", 0.4)
    wide = make_plan(walk(build_model("wrn_16_4", width=0.25)), "basic", 0.5)
    cpu = torch.device("cpu")
    for plan, overrides, chooses in (
            (dense, {"solve": "target"}, True), (dense, {"solve": "none"}, False),
            (dense, {}, True),  # the preset fits where a step changes kind
            (dense, {"solve": "target", "init": "random"}, False),
            (dense, {"solve": "auto"}, True),  # dense -> basic changes kind
            (wide, {"solve": "auto"}, False), (wide, {"solve": "target"}, True)):
        recaster = Recaster(plan, make_config("fast", overrides), cpu)
        steps = {s.block.index for s in plan.recast_steps()}
        assert recaster.surgery.choose_channels == (steps if chooses else set())
