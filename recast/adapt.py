"""Rebuild the input side of a fixed part (head, transition) for a new width.

When the block before a fixed part is recast to fewer channels, the layers
of the fixed part that first read those channels (a BN, a conv, a linear,
possibly after pooling and flattening) are rebuilt to take the new width;
everything else is kept. A rebuilt layer is a resized copy of the old one, so
a subclass keeps its own parts (timm's BatchNormAct2d its activation, a "same"
padding or weight-standardised conv its forward); its weights start afresh.
"""

import copy
from typing import Any

import torch
from torch import fx, nn

from blocks.weights import copy_bn

from recast.errors import PlanError
from recast.ops import ELEMENTWISE_ACTIVATION_MODULES, is_elementwise_activation, target_name

_PASS_THROUGH = ELEMENTWISE_ACTIVATION_MODULES + (
    nn.Identity, nn.modules.dropout._DropoutNd, nn.Flatten, nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
)


def adapt_input(
    module: fx.GraphModule,
    example_shape: tuple[int, ...],
    new_channels: int,
    keep: torch.Tensor | None = None,
) -> fx.GraphModule:
    """A copy of ``module`` whose input layers take ``new_channels`` channels.

    ``example_shape`` is the old input shape. New layers are freshly
    initialised, or, given ``keep`` (the old channel indices the new input
    holds), sliced from the old layers: a warm start. Raises PlanError when a
    first reader cannot be rebuilt.
    """
    old_channels = example_shape[1]
    adapted = copy.deepcopy(module)
    if new_channels == old_channels and keep is None:
        return adapted
    modules = dict(adapted.named_modules())
    for path in _first_readers(adapted, modules):
        layer = modules[path]
        new_layer = _rebuilt(layer, path, old_channels, new_channels)
        if keep is not None:
            slice_input(layer, new_layer, keep, old_channels)
        _set_module(adapted, path, new_layer)
    adapted.recompile()
    return adapted


@torch.no_grad()
def slice_input(old: nn.Module, new: nn.Module, keep: torch.Tensor, old_channels: int) -> None:
    """Copy ``old``'s weights for the kept input channels into ``new``."""
    if isinstance(old, nn.modules.batchnorm._NormBase):
        copy_bn(old, new, keep)
    elif isinstance(old, (nn.LayerNorm, nn.GroupNorm, nn.PReLU)):
        if old.weight is not None:
            new.weight.copy_(old.weight[keep])
        if old.bias is not None:
            new.bias.copy_(old.bias[keep])
    elif isinstance(old, nn.Conv2d):
        new.weight.copy_(old.weight[:, keep])
        if old.bias is not None:
            new.bias.copy_(old.bias)
    elif isinstance(old, nn.Linear):
        per_channel = old.in_features // old_channels
        columns = (keep.view(-1, 1) * per_channel + torch.arange(per_channel)).view(-1)
        new.weight.copy_(old.weight[:, columns])
        if old.bias is not None:
            new.bias.copy_(old.bias)


# norms over channels only (and per-channel PReLUs): rebuilt for the new width,
# and their readers too
_CHANNEL_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.PReLU)


def most_read_channels(module: nn.Module, channels: int, count: int) -> torch.Tensor | None:
    """The ``count`` of teacher block ``module``'s ``channels`` input channels its first
    convs and linears weigh most, sorted: which channels to keep when nothing else
    says. Each reader's input-weight L1 norms are scaled to sum to 1, then added (a
    BN before a reader is not counted). None when no conv or linear reads them
    (a dense block's concatenation only, a flattened map)."""
    if not isinstance(module, fx.GraphModule):
        return None
    modules = dict(module.named_modules())
    score, found = torch.zeros(channels), False
    for path in _first_readers(module, modules, strict=False):
        layer = modules[path]
        if isinstance(layer, nn.Conv2d) and layer.groups == 1 and layer.in_channels == channels:
            weights = layer.weight.detach().abs().sum((0, 2, 3))
        elif isinstance(layer, nn.Linear) and layer.in_features == channels:
            weights = layer.weight.detach().abs().sum(0)
        else:
            continue
        score += weights.cpu() / weights.sum().clamp_min(1e-12).cpu()
        found = True
    return score.topk(count).indices.sort().values if found else None


def _first_readers(gm: fx.GraphModule, modules: dict[str, nn.Module],
                   strict: bool = True) -> list[str]:
    """Module paths of the layers that first see the input's channels; ``strict``
    refuses an input node no layer can be rebuilt for (an add, a concatenation)."""
    readers: list[str] = []
    frontier = [n for n in gm.graph.nodes if n.op == "placeholder"]
    seen: set[fx.Node] = set()
    while frontier:
        node = frontier.pop()
        for user in node.users:
            if user in seen:
                continue
            seen.add(user)
            if user.op == "call_module":
                layer = modules[str(user.target)]
                if isinstance(layer, _PASS_THROUGH) or (
                        isinstance(layer, nn.PReLU) and layer.num_parameters == 1):
                    frontier.append(user)
                    continue
                readers.append(str(user.target))
                if isinstance(layer, _CHANNEL_NORMS):
                    frontier.append(user)  # keeps the width: its readers too
            elif user.op in ("call_function", "call_method") and _is_shape_free(user):
                frontier.append(user)
            elif user.op != "output" and strict:
                raise PlanError(
                    f"cannot give the fixed part node '{user.name}' "
                    f"({user.target}) a new input width; recast the block "
                    f"after it too or keep the width of the block before it"
                )
    return readers


def _is_shape_free(node: fx.Node) -> bool:
    name = target_name(node)
    return name in {"flatten", "adaptive_avg_pool2d", "avg_pool2d",
                    "max_pool2d", "dropout", "size", "getattr", "view", "reshape",
                    "mean", "getitem"} or is_elementwise_activation(name)


def _rebuilt(layer: nn.Module, path: str, old: int, new: int) -> nn.Module:
    if isinstance(layer, nn.modules.batchnorm._NormBase) and layer.num_features == old:
        return _resized(layer, {"num_features": new}, {
            "weight": (new,), "bias": (new,), "running_mean": (new,), "running_var": (new,)})
    if isinstance(layer, nn.GroupNorm) and layer.num_channels == old \
            and new % layer.num_groups == 0:
        return _resized(layer, {"num_channels": new}, {"weight": (new,), "bias": (new,)})
    if isinstance(layer, nn.LayerNorm) and tuple(layer.normalized_shape) == (old,):
        return _resized(layer, {"normalized_shape": (new,)}, {"weight": (new,), "bias": (new,)})
    if isinstance(layer, nn.PReLU) and layer.num_parameters == old:
        return _resized(layer, {"num_parameters": new}, {"weight": (new,)})
    if isinstance(layer, nn.Conv2d) and layer.groups == 1:
        return _resized(layer, {"in_channels": new}, {
            "weight": (layer.out_channels, new, *layer.kernel_size)})
    if isinstance(layer, nn.Linear) and layer.in_features % old == 0:
        per_channel = layer.in_features // old
        return _resized(layer, {"in_features": new * per_channel}, {
            "weight": (layer.out_features, new * per_channel)})
    raise PlanError(
        f"cannot rebuild '{path}' ({type(layer).__name__}) for {new} input "
        f"channels instead of {old}; keep the width of the block before it"
    )


def _resized(layer: nn.Module, sizes: dict[str, Any],
             shapes: dict[str, tuple[int, ...]]) -> nn.Module:
    """A copy of ``layer`` (its own class, forward and submodules) with attributes
    ``sizes`` set and tensors ``shapes`` resized, freshly initialised."""
    new = copy.deepcopy(layer)
    for name, value in sizes.items():
        setattr(new, name, value)
    for name, shape in shapes.items():
        old = getattr(layer, name, None)
        if not isinstance(old, torch.Tensor):
            continue  # e.g. no bias, no running statistics
        fresh = torch.empty(shape, dtype=old.dtype, device=old.device)
        if isinstance(old, nn.Parameter):
            new._parameters[name] = nn.Parameter(fresh, requires_grad=old.requires_grad)
        else:
            new._buffers[name] = fresh
    new.reset_parameters()  # type: ignore[operator]
    return new


def _set_module(root: nn.Module, path: str, layer: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, layer)


def output_shape(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of ``module``'s output for a batch-1 input of ``input_shape``."""
    was_training = module.training
    module.eval()
    device = next(module.parameters(), torch.zeros(0)).device
    with torch.no_grad():
        out = module(torch.zeros((1, *input_shape[1:]), device=device))
    module.train(was_training)
    return tuple(out.shape)
