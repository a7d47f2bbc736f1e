"""Reading a teacher block's weights: the conv/BN pairs warm starts copy from.

Teacher blocks are torch.fx GraphModules cut out by the walker; these helpers
find their conv -> BN pairs in execution order and copy chosen channels.
"""

import torch
from torch import Tensor, fx, nn


def conv_bn_pairs(module: fx.GraphModule) -> list[tuple[nn.Conv2d, nn.Module | None]]:
    """(conv, the BN right after it) in execution order."""
    modules = dict(module.named_modules())
    pairs = []
    for node in module.graph.nodes:
        if node.op != "call_module" or not isinstance(modules[str(node.target)], nn.Conv2d):
            continue
        bn = None
        users = list(node.users)
        if len(users) == 1 and users[0].op == "call_module":
            after = modules[str(users[0].target)]
            if isinstance(after, nn.modules.batchnorm._BatchNorm):
                bn = after
        pairs.append((modules[str(node.target)], bn))
    return pairs


def top_l1(conv: nn.Conv2d, count: int) -> Tensor:
    """Indices of the ``count`` output filters with the largest L1 norm, sorted
    (Li et al., "Pruning Filters for Efficient ConvNets")."""
    norms = conv.weight.detach().abs().flatten(1).sum(1)
    return norms.topk(count).indices.sort().values


@torch.no_grad()
def copy_bn(src: nn.Module, dst: nn.Module, idx: Tensor) -> None:
    """dst's affine parameters and running statistics <- src's, channels ``idx``."""
    for name in ("weight", "bias", "running_mean", "running_var"):
        source = getattr(src, name, None)
        if source is not None:
            getattr(dst, name).copy_(source[idx])


@torch.no_grad()
def copy_conv_bn(src: nn.Conv2d, src_bn: nn.Module | None, dst: nn.Conv2d,
                 dst_bn: nn.Module | None, out_idx: Tensor, in_idx: Tensor) -> None:
    """dst <- src[out_idx][:, in_idx], and the BN statistics for out_idx."""
    dst.weight.copy_(src.weight[out_idx][:, in_idx])
    if src.bias is not None and dst.bias is not None:
        dst.bias.copy_(src.bias[out_idx])
    if src_bn is not None and dst_bn is not None:
        copy_bn(src_bn, dst_bn, out_idx)


@torch.no_grad()
def select_channels(weight: Tensor, out_idx: Tensor, in_idx: Tensor) -> None:
    """A 1x1 (or centre-tap) map that copies input channel in_idx[j] to every output
    o with out_idx[o] == in_idx[j]: the identity on the channels both sides keep."""
    for o, channel in enumerate(out_idx.tolist()):
        match = (in_idx == channel).nonzero()
        if len(match):
            weight[o, int(match[0])] = 1.0


def inverted_residual_convs(
    module: fx.GraphModule,
) -> tuple[tuple[nn.Conv2d, nn.Module] | None, tuple[nn.Conv2d, nn.Module],
           tuple[nn.Conv2d, nn.Module]] | None:
    """(expand or None, depthwise, project) conv/BN pairs of a MobileNet-style block.

    Squeeze-excitation convs have no BN after them, so they are left out; any
    other shape (no depthwise conv, extra convs) gives None.
    """
    pairs = [(c, bn) for c, bn in conv_bn_pairs(module) if bn is not None]
    shape = ["dw" if is_depthwise(c) else c.kernel_size for c, _ in pairs]
    if shape == [(1, 1), "dw", (1, 1)]:
        return pairs[0], pairs[1], pairs[2]
    if shape == ["dw", (1, 1)]:
        return None, pairs[0], pairs[1]
    return None


def is_depthwise(conv: nn.Conv2d) -> bool:
    """One filter per input channel (groups == channels > 1)."""
    return conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels
