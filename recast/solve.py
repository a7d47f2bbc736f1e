"""Closed-form warm starts: solve a target block for its teacher before any SGD.

Where a linear map can reproduce the teacher, one least-squares solve replaces
many SGD steps: a conv -> BN -> ReLU target's last conv is fitted to the teacher
block's pre-activation; the conv after a narrowed output is re-solved from the
kept channels (He et al. 2017, "Channel Pruning for Accelerating Very Deep
Neural Networks"; ThiNet). Positions come from a fixed-seed generator unless
one is given: a fit never consumes the global RNG a resumed run replays.
"""

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from blocks import BasicBlock, ConvBlock
from recast.errors import RecastError
from recast.ops import node_role, target_name

def _padded(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``x`` padded as the conv pads it (any padding and padding mode)."""
    (dh, dw), (kh, kw) = conv.dilation, conv.kernel_size
    if isinstance(conv.padding, str):  # 'same' puts the odd pixel on the far side
        th, tw = (dh * (kh - 1), dw * (kw - 1)) if conv.padding == "same" else (0, 0)
        pads = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
    else:
        pads = (conv.padding[1],) * 2 + (conv.padding[0],) * 2
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    return F.pad(x, pads, mode=mode) if any(pads) else x


def _conv(conv: nn.Conv2d, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return F.conv2d(_padded(conv, x), weight, bias, conv.stride, 0, conv.dilation)


def _patches(conv: nn.Conv2d, inputs: Tensor, picks: Tensor, positions: int) -> Tensor:
    """im2col rows (len(picks), C_in*kh*kw) at flat (image, output position) indices."""
    padded, image, place = _padded(conv, inputs), picks // positions, picks % positions
    chunk = max(1, 2 ** 24 // (conv.weight[0].numel() * positions))  # bounds unfold's memory
    rows = []
    for start in range(0, inputs.shape[0], chunk):
        inside = (image >= start) & (image < start + chunk)
        if inside.any():
            cols = F.unfold(padded[start:start + chunk], conv.kernel_size, conv.dilation,
                            0, conv.stride)
            rows.append(cols[image[inside] - start, :, place[inside]])
    return torch.cat(rows)


@torch.no_grad()
def fit_conv(conv: nn.Conv2d, inputs: Tensor, targets: Tensor, ridge: float = 1e-3,
             max_positions: int = 4096, generator: torch.Generator | None = None
             ) -> tuple[Tensor, Tensor]:
    """Ridge least-squares (weight, bias) with ``conv(inputs; weight) + bias ~= targets``.

    The ridge, relative to the Gram matrix's mean diagonal (scale-free), spares
    the bias. ``max_positions`` random output positions over images and space
    far outnumber the C_in*kh*kw + 1 unknowns. ``conv`` is only read.
    """
    if conv.groups != 1:
        raise RecastError(f"fit_conv needs groups=1, got {conv.groups}; keep the warm start")
    if inputs.dim() != 4 or inputs.shape[1] != conv.in_channels or targets.shape != (
            len(inputs), conv.out_channels, *_conv(conv, inputs[:1], conv.weight, None).shape[2:]):
        raise RecastError(f"fit_conv: inputs {tuple(inputs.shape)} and targets "
                          f"{tuple(targets.shape)} do not fit {conv}; pass the conv's own input "
                          f"and targets shaped like its output")
    positions = targets[0, 0].numel()
    generator = generator or torch.Generator().manual_seed(0)
    picks = torch.randperm(len(targets) * positions, generator=generator)[:max_positions]
    picks = picks.sort().values.to(inputs.device)
    x = F.pad(_patches(conv, inputs, picks, positions).double().cpu(), (0, 1), value=1.0)
    y = targets.flatten(2)[picks // positions, :, picks % positions]
    gram, moment = x.T @ x, x.T @ y.double().cpu()
    features = gram.shape[0] - 1
    gram.diagonal()[:features] += ridge * gram.diagonal()[:features].mean()
    factor, info = torch.linalg.cholesky_ex(gram)
    solution = torch.cholesky_solve(moment, factor) if int(info) == 0 \
        else torch.linalg.pinv(gram, hermitian=True) @ moment  # rank-deficient, no ridge
    solution = solution.to(conv.weight.device, conv.weight.dtype)
    return solution[:features].T.reshape(conv.weight.shape).contiguous(), solution[features]


@torch.no_grad()
def install_linear_fit(conv: nn.Conv2d, bn: nn.Module | None, weight: Tensor, bias: Tensor,
                       inputs: Tensor) -> None:
    """Make ``bn(conv(x)) ~= conv2d(x, weight) + bias`` in eval and in train mode.

    BN gets the statistics of ``conv(inputs)`` and an affine part that undoes
    them (identity plus ``bias``), so batch and running statistics agree and
    training starts where the fit is. Without a BN the bias goes to conv.bias.
    """
    conv.weight.copy_(weight)
    if bn is None:
        if conv.bias is not None:
            conv.bias.copy_(bias)
        return
    if not getattr(bn, "affine", False):
        raise RecastError(f"cannot install a fit into {type(bn).__name__} without affine "
                          f"parameters; build the target's BN with affine=True")
    if conv.bias is not None:
        conv.bias.zero_()
    # the biased variance is what BN divides by in train mode: exact on this batch
    var, mean = torch.var_mean(conv(inputs).transpose(0, 1).flatten(1), dim=1, unbiased=False)
    if bn.running_mean is not None:
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
    bn.weight.copy_((var + bn.eps).sqrt())
    bn.bias.copy_(mean + bias)


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


@torch.no_grad()
def match_batch_statistics(block: nn.Module, inputs: Tensor) -> None:
    """Set every BN's running statistics in ``block`` to those ``inputs`` give it.

    A fit runs in eval mode, so it reads hidden features through the running
    statistics; training reads them through the batch's. A random or narrowed
    conv keeps BN's initial mean 0 and variance 1 while its outputs vary far
    less (variance 0.002-0.4 on DenseNet -> basic): the fit then learned on
    features training never sees, ended above the unfitted block's MSE in train
    mode and grew its filters 3-85x, which SGD barely moves. Each BN, in block
    order, gets the biased statistics train mode divides by.
    """
    def from_input(bn: nn.Module, args: tuple[Tensor, ...]) -> None:
        var, mean = torch.var_mean(args[0].transpose(0, 1).flatten(1), dim=1, unbiased=False)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)

    hooks = [m.register_forward_pre_hook(from_input) for m in block.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None]
    training = [(m, m.training) for m in block.modules()]
    block.eval()
    try:
        block(inputs)
    finally:
        for hook in hooks:
            hook.remove()
        for module, mode in training:
            module.training = mode


@torch.no_grad()
def solve_block(source: fx.GraphModule, target: nn.Module, student_inputs: Tensor,
                teacher_inputs: Tensor, out_idx: Tensor | None = None, ridge: float = 1e-3,
                max_positions: int = 4096, generator: torch.Generator | None = None
                ) -> dict[str, float]:
    """Fit the target's last conv so its pre-activation matches the teacher block's.

    Inputs: the same images as this block's input in the student and in the
    teacher; ``out_idx``: the teacher channels the target keeps (None: all). A
    BasicBlock's conv2 fits the teacher minus the shortcut. Its BNs first get
    these inputs' statistics (:func:`match_batch_statistics`), so the fit reads
    what training will. Runs in eval mode, restores modes, keeps the fit only if
    it lowers the MSE on these inputs (else the block is as it came). Returns
    mse_before (with the inputs' statistics), mse_after, teacher_var and solved.
    """
    if not can_solve(target):
        raise RecastError(f"solve_block handles ConvBlock and BasicBlock targets, not "
                          f"{type(target).__name__}; keep the warm start for this block")
    block = target[0] if isinstance(target, nn.Sequential) else target
    conv, bn = (block.conv, block.bn) if isinstance(block, ConvBlock) else (block.conv2, block.bn2)
    modes = [(m, m.training) for m in [*source.modules(), *target.modules()]]
    source.eval()
    target.eval()
    try:
        expected = preactivation(source, teacher_inputs)
        if out_idx is not None:
            expected = expected[:, out_idx.to(expected.device)]
        if expected.shape[1] != conv.out_channels:
            raise RecastError(f"solve_block: the teacher gives {expected.shape[1]} channels, "
                              f"the target {conv.out_channels}; pass out_idx, the teacher "
                              f"channels the target keeps")
        saved = {k: v.clone() for k, v in block.state_dict().items()}
        match_batch_statistics(block, student_inputs)
        before = float(F.mse_loss(_block_preactivation(block, student_inputs), expected))
        hidden, goal = student_inputs, expected
        if isinstance(block, BasicBlock):
            hidden = F.relu(block.bn1(block.conv1(student_inputs)))
            goal = expected - block.shortcut(student_inputs)
        weight, bias = fit_conv(conv, hidden, goal, ridge, max_positions, generator)
        install_linear_fit(conv, bn, weight, bias, hidden)
        after = float(F.mse_loss(_block_preactivation(block, student_inputs), expected))
        if not (kept := keeps_fit(before, after)):
            block.load_state_dict(saved)
    finally:
        for module, mode in modes:
            module.training = mode
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
    the student made a 1x1 conv). The BN after ``conv`` keeps its statistics; a
    bias goes to conv.bias or else ``bn.running_mean``. Keeps the fit only if
    it lowers the conv-output MSE; returns mse_before, mse_after and solved.
    """
    expected = teacher_inputs if teacher_conv is None else teacher_conv(teacher_inputs)
    before = float(F.mse_loss(conv(student_inputs), expected))
    weight, bias = fit_conv(conv, student_inputs, expected, ridge, max_positions, generator)
    after = float(F.mse_loss(_conv(conv, student_inputs, weight, bias), expected))
    if kept := keeps_fit(before, after):
        conv.weight.copy_(weight)
        if conv.bias is not None:
            conv.bias.copy_(bias)
        elif bn is not None and getattr(bn, "running_mean", None) is not None:
            bn.running_mean.sub_(bias)
    return {"mse_before": before, "mse_after": after, "solved": float(kept)}
