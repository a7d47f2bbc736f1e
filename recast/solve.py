"""Closed-form warm starts: solve a target block for its teacher before any SGD.

Where a linear map can reproduce the teacher, one least-squares solve replaces
many SGD steps: a conv -> BN -> ReLU target's last conv is fitted to the teacher
block's pre-activation (a basic target's conv2 with its projection shortcut);
the conv after a narrowed output is re-solved from the kept channels (He et
al. 2017, "Channel Pruning for Accelerating Very Deep Neural Networks";
ThiNet). The arithmetic is recast/least_squares.py.
"""

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from blocks import BasicBlock, ConvBlock
from recast.bn_statistics import match_batch_statistics
from recast.errors import RecastError
from recast.least_squares import apply_conv, fit_conv, fit_convs, install_linear_fit, \
    principal_filters
from recast.modes import held_in_eval
from recast.ops import node_role, target_name


def _is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """nn.ReLU, F.relu, torch.relu, x.relu(), x.relu_(), ..."""
    if node.op == "call_module":
        return isinstance(modules[str(node.target)], nn.ReLU)
    return node.op in ("call_function", "call_method") and target_name(node) in ("relu", "relu_")


def _split(block: fx.GraphModule) -> list[fx.Node]:
    """[pre-activation, last ReLU, tail ops...], or [] if the block ends otherwise."""
    modules = dict(block.named_modules())
    node, chain = next(n for n in block.graph.nodes if n.op == "output").args[0], []
    while isinstance(node, fx.Node) and len(node.all_input_nodes) == 1:
        chain.append(node)
        if _is_relu(node, modules):
            return [node.all_input_nodes[0]] + chain[::-1]
        if node_role(node, modules) not in ("pool", "dropout", "identity"):
            break
        node = node.all_input_nodes[0]
    return []


def _subgraph(block: fx.GraphModule, graph: fx.Graph, nodes: Iterable[fx.Node], env: dict,
              last: fx.Node, name: str) -> fx.GraphModule:
    """``graph`` plus copies of ``nodes`` up to ``last``, as a module sharing block's."""
    for node in nodes:
        env[node] = graph.node_copy(node, lambda n: env[n])
        if node is last:
            break
    graph.output(env[last])
    return fx.GraphModule(block, graph, class_name=name)


@torch.no_grad()
def preactivation(block: fx.GraphModule, x: Tensor) -> Tensor:
    """What enters the block's last ReLU (the one only pooling/dropout follow).

    BN's output for conv-BN-ReLU-pool, ``main + shortcut`` for a post-activation
    basic block, the output if there is no such ReLU: where a conv -> BN -> ReLU
    target can match linearly. Runs only the nodes up to it (in-place safe).
    """
    split = _split(block)
    if not split:
        return block(x)
    return _subgraph(block, fx.Graph(), block.graph.nodes, {}, split[0], "Pre")(x)


def activation_tail(block: fx.GraphModule) -> fx.GraphModule | None:
    """The block's last ReLU and what follows it, as a module of the pre-activation.

    ``activation_tail(b)(preactivation(b, x)) == b(x)``; None when the block
    ends without a ReLU (its output is its pre-activation). Shares b's modules.
    """
    split = _split(block)
    if not split:
        return None
    graph = fx.Graph()
    env = {split[0]: graph.placeholder("preactivation")}
    return _subgraph(block, graph, split[1:], env, split[-1], "ActivationTail")


def _block_preactivation(block: nn.Module, x: Tensor) -> Tensor:
    if isinstance(block, ConvBlock):
        return block.bn(block.conv(x))
    hidden = F.relu(block.bn1(block.conv1(x)))
    return block.bn2(block.conv2(hidden)) + block.shortcut(x)


def can_solve(target: nn.Module) -> bool:
    """Whether :func:`solve_block` handles this target (alone or with a tail)."""
    block = target[0] if isinstance(target, nn.Sequential) else target
    return isinstance(block, (ConvBlock, BasicBlock))


def keeps_fit(before: float, after: float) -> bool:
    """Whether a fit is kept: only if it does not raise the MSE (NaN never passes)."""
    return after <= before


def _fit_last_conv(block: nn.Module, inputs: Tensor, expected: Tensor, ridge: float,
                   max_positions: int, generator: torch.Generator | None) -> None:
    """Install the least-squares fit of ``block``'s last conv (with a projection
    shortcut's conv, the paths adding up) to ``expected``, its pre-activation."""
    if isinstance(block, ConvBlock):
        weight, bias = fit_conv(block.conv, inputs, expected, ridge, max_positions, generator)
        install_linear_fit(block.conv, block.bn, weight, bias, inputs)
        return
    hidden = F.relu(block.bn1(block.conv1(inputs)))
    side = block.shortcut
    if not isinstance(side, nn.Sequential):  # the identity: fit what it leaves
        weight, bias = fit_conv(block.conv2, hidden, expected - side(inputs), ridge,
                                max_positions, generator)
    else:
        (weight, side_weight), bias = fit_convs(
            [(block.conv2, hidden), (side[0], inputs)], expected, ridge, max_positions,
            generator)
        install_linear_fit(side[0], side[1], side_weight, torch.zeros_like(bias), inputs)
    install_linear_fit(block.conv2, block.bn2, weight, bias, hidden)


def _principal_hidden(block: BasicBlock, inputs: Tensor, expected: Tensor, ridge: float,
                      max_positions: int, generator: torch.Generator | None) -> None:
    """Give a fresh basic target's conv1 the directions its residual path must add.

    What the shortcut cannot give (the teacher minus the input, or minus the
    best 1x1 fit of a projection) is fitted linearly from conv1's patches; its
    leading principal directions become conv1's filters, each with its negation
    so that after the ReLU conv2 can still add them back linearly; each filter
    gets the mean norm of the random ones (BN follows: the output is the same,
    and no filter trains at another pace for its scale). Channels past twice
    the directions keep their random filters.
    """
    side = block.shortcut
    if isinstance(side, nn.Sequential):
        weight, bias = fit_conv(side[0], inputs, expected, ridge, max_positions, generator)
        residual = expected - apply_conv(side[0], inputs, weight, bias)
    else:
        residual = expected - side(inputs)
    conv1 = block.conv1
    filters = principal_filters(conv1, inputs, residual, conv1.out_channels // 2, ridge,
                                max_positions, generator)
    filters = torch.stack([filters, -filters], 1).flatten(0, 1)
    norm = conv1.weight.flatten(1).norm(dim=1).mean()
    scale = norm / filters.flatten(1).norm(dim=1).clamp_min(1e-12)
    conv1.weight[:len(filters)] = filters * scale.view(-1, 1, 1, 1)
    if conv1.bias is not None:
        conv1.bias.zero_()


@torch.no_grad()
def solve_block(source: fx.GraphModule, target: nn.Module, student_inputs: Tensor,
                teacher_inputs: Tensor, out_idx: Tensor | None = None, ridge: float = 1e-3,
                max_positions: int = 4096, generator: torch.Generator | None = None,
                fit_hidden: bool = False) -> dict[str, float]:
    """Fit the target's last conv (and a projection shortcut) so its pre-activation
    matches the teacher block's, its BNs first given the inputs' statistics.

    Inputs: the same images as this block's input in the student and in the
    teacher; ``out_idx``: the teacher channels the target keeps (None: all). A
    BasicBlock's conv2 fits the teacher minus an identity shortcut, or together
    with a projection shortcut's conv (the paths add up). Its BNs first get
    these inputs' statistics (:func:`match_batch_statistics`), so the fit reads
    what training will. Runs in eval mode, restores modes, keeps the fit only if
    it lowers the MSE on these inputs (else, or on an error, the block is as it
    came). ``fit_hidden`` (pass it only for a conv1 no warm start filled): a
    BasicBlock's conv1 first gets the principal directions of what its residual
    path must add; if that fit is not kept, the plain one is tried. Returns
    mse_before (with the inputs' statistics, so not the block as it came),
    mse_after, teacher_var and solved (1.0 if kept).
    """
    if not can_solve(target):
        raise RecastError(f"solve_block handles ConvBlock and BasicBlock targets, not "
                          f"{type(target).__name__}; keep the warm start for this block")
    block = target[0] if isinstance(target, nn.Sequential) else target
    conv = block.conv if isinstance(block, ConvBlock) else block.conv2
    with held_in_eval(source, target):
        expected = preactivation(source, teacher_inputs)
        if out_idx is not None:
            expected = expected[:, out_idx.to(expected.device)]
        if expected.shape[1] != conv.out_channels:
            raise RecastError(f"solve_block: the teacher gives {expected.shape[1]} channels, "
                              f"the target {conv.out_channels}; pass out_idx, the teacher "
                              f"channels the target keeps")
        saved = {k: v.clone() for k, v in block.state_dict().items()}
        try:
            match_batch_statistics(block, student_inputs)
            before = float(F.mse_loss(_block_preactivation(block, student_inputs), expected))
            for principal in [True, False] if fit_hidden and isinstance(block, BasicBlock) \
                    else [False]:
                if principal:
                    _principal_hidden(block, student_inputs, expected, ridge, max_positions,
                                      generator)
                    match_batch_statistics(block, student_inputs)
                _fit_last_conv(block, student_inputs, expected, ridge, max_positions,
                               generator)
                after = float(F.mse_loss(_block_preactivation(block, student_inputs),
                                         expected))
                if kept := keeps_fit(before, after):
                    break
                block.load_state_dict(saved)  # the plain fit next, or the block as it came
                match_batch_statistics(block, student_inputs)
        except BaseException:
            block.load_state_dict(saved)  # never half a fit
            raise
        if not kept:
            block.load_state_dict(saved)
    return {"mse_before": before, "mse_after": after, "teacher_var": float(expected.var()),
            "solved": float(kept)}


@torch.no_grad()
def fit_next_conv(conv: nn.Conv2d, bn: nn.Module | None, teacher_conv: nn.Conv2d | None,
                  student_inputs: Tensor, teacher_inputs: Tensor, ridge: float = 1e-3,
                  max_positions: int = 4096, generator: torch.Generator | None = None
                  ) -> dict[str, float]:
    """Re-solve a conv that reads a narrowed input so it outputs what its teacher did.

    ``conv`` reads the kept channels (``student_inputs``, the student's own
    activations), ``teacher_conv`` the full-width ``teacher_inputs`` (same
    images); None: the teacher passes its input through (an identity shortcut
    the student made a 1x1 conv). See :func:`refit_conv`.
    """
    expected = teacher_inputs if teacher_conv is None else teacher_conv(teacher_inputs)
    return refit_conv(conv, bn, student_inputs, expected, ridge, max_positions, generator)


@torch.no_grad()
def refit_conv(conv: nn.Conv2d, bn: nn.Module | None, inputs: Tensor, expected: Tensor,
               ridge: float = 1e-3, max_positions: int = 4096,
               generator: torch.Generator | None = None) -> dict[str, float]:
    """Least-squares ``conv`` so that ``conv(inputs) ~= expected``, its BN left as is.

    The BN after ``conv`` keeps its statistics; a bias goes to conv.bias or else
    ``bn.running_mean``. Keeps the fit only if it lowers the conv-output MSE;
    returns mse_before, mse_after and solved.
    """
    before = float(F.mse_loss(conv(inputs), expected))
    weight, bias = fit_conv(conv, inputs, expected, ridge, max_positions, generator)
    after = float(F.mse_loss(apply_conv(conv, inputs, weight, bias), expected))
    if kept := keeps_fit(before, after):
        conv.weight.copy_(weight)
        if conv.bias is not None:
            conv.bias.copy_(bias)
        elif bn is not None and getattr(bn, "running_mean", None) is not None:
            bn.running_mean.sub_(bias)
    return {"mse_before": before, "mse_after": after, "solved": float(kept)}
