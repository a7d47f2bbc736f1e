"""Name what each traced fx node does, independently of how it was written,
and count what a module's ops cost (params and mults) for the planner.

The walker only needs coarse roles (conv, norm, activation, pool, add, cat,
...) and they must be the same whether a model calls ``nn.ReLU``,
``F.relu`` or ``x.relu()``. Mults are counted as recast.counting (fvcore)
counts them, but without fvcore's trace: the planner sizes many candidates.
"""

import functools
import math
import operator
from typing import Any

import torch
from torch import fx, nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from blocks import BlockSpec
from recast.errors import PlanError

Size = tuple[int, int, tuple[int, ...]]  # params, mults, output shape

_ACTIVATIONS = {
    "relu", "relu_", "relu6", "gelu", "silu", "hardswish", "hardsigmoid",
    "sigmoid", "tanh", "leaky_relu", "elu", "mish", "softplus", "hardtanh",
}
_RESHAPES = {
    "flatten", "view", "reshape", "permute", "transpose", "contiguous",
    "size", "getattr", "getitem", "chunk", "split", "unsqueeze", "squeeze",
    "expand", "dim", "narrow",
}
_MODULE_ROLES: list[tuple[type, str]] = [
    (nn.modules.conv._ConvNd, "conv"),
    (nn.Linear, "linear"),
    (nn.modules.batchnorm._BatchNorm, "norm"),
    (nn.LayerNorm, "norm"),
    (nn.GroupNorm, "norm"),
    (nn.modules.instancenorm._InstanceNorm, "norm"),
    (nn.modules.pooling._AdaptiveAvgPoolNd, "global_pool"),
    (nn.modules.pooling._AdaptiveMaxPoolNd, "global_pool"),
    (nn.modules.pooling._MaxPoolNd, "pool"),
    (nn.modules.pooling._AvgPoolNd, "pool"),
    (nn.modules.dropout._DropoutNd, "dropout"),
    (nn.Flatten, "reshape"),
    (nn.Identity, "identity"),
    (nn.MultiheadAttention, "attention"),
]


def target_name(node: fx.Node) -> str:
    """The bare name of what a call node calls: 'relu', 'cat', 'add', ..."""
    target: Any = node.target
    if isinstance(target, str):
        return target.split(".")[-1]
    if target in (operator.add, operator.iadd):
        return "add"
    if target in (operator.mul, operator.imul):
        return "mul"
    return getattr(target, "__name__", str(target))


def node_role(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    """A coarse role for ``node``: conv, linear, norm, act, pool, ...."""
    if node.op in ("placeholder", "output", "get_attr"):
        return node.op
    if node.op == "call_module":
        module = modules[str(node.target)]
        for kind, role in _MODULE_ROLES:
            if isinstance(module, kind):
                return role
        if type(module).__module__.startswith("torch.nn.modules.activation"):
            return "act"
        # a module kept whole (a leaf): it anchors a block only if it has weights;
        # a weightless one (padding, a custom activation) goes with its neighbours
        return "module" if next(module.parameters(), None) is not None else "other"
    name = target_name(node).lower()
    if name.startswith("conv"):
        return "conv"
    if name == "linear":
        return "linear"
    if name in _ACTIVATIONS or name.rstrip("_") in _ACTIVATIONS:
        return "act"
    if name in ("batch_norm", "layer_norm", "group_norm", "instance_norm"):
        return "norm"
    if name in ("adaptive_avg_pool2d", "adaptive_max_pool2d", "mean"):
        return "global_pool"
    if "pool" in name:
        return "pool"
    if name.startswith("dropout") or name == "stochastic_depth":
        return "dropout"
    if name in _RESHAPES:
        return "reshape"
    if name in ("add", "add_", "sub"):
        return "add"
    if name in ("cat", "concat", "stack"):
        return "cat"
    if name in ("mul", "mul_"):
        return "mul"
    if "attention" in name or name in ("matmul", "bmm", "softmax", "baddbmm", "einsum"):
        return "attention"
    return "other"


def module_size(module: nn.Module, in_shape: tuple[int, ...]) -> Size:
    """Params, mults (conv and matrix-multiply multiplies, as the report counts them)
    and output shape of ``module`` on one batch-1 input; run on the meta device (shapes
    only) where the module allows it, for speed."""
    was_training = module.training
    module.eval()
    meta = {name: torch.empty_like(t, device="meta") for name, t in
            [*module.named_parameters(), *module.named_buffers()]}
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = functional_call(module, meta, (torch.zeros((1, *in_shape[1:]), device="meta"),))
    except Exception:  # noqa: BLE001  (e.g. a constant tensor of its own): count for real
        device = next(module.parameters(), torch.zeros(0)).device
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = module(torch.zeros((1, *in_shape[1:]), device=device))
    finally:
        module.train(was_training)
    params = sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())
    return params, int(counter.get_total_flops()) // 2, tuple(out.shape)


@functools.lru_cache(maxsize=4096)
def spec_size(spec: BlockSpec, in_shape: tuple[int, ...]) -> Size:
    """A target's size, built and run on the meta device (shapes only); its convs and
    linears are counted by hooks, far faster than a dispatch-level counter."""
    try:
        with torch.device("meta"):
            module = spec.build().eval()
    except ValueError as exc:
        raise PlanError(str(exc)) from exc
    mults = 0

    def count(layer: nn.Module, _: Any, out: torch.Tensor) -> None:
        nonlocal mults
        per_output = layer.in_features if isinstance(layer, nn.Linear) else \
            layer.in_channels // layer.groups * math.prod(layer.kernel_size)
        mults += out.numel() * per_output

    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            layer.register_forward_hook(count)
    with torch.no_grad():
        out = module(torch.zeros((1, *in_shape[1:]), device="meta"))
    return sum(p.numel() for p in module.parameters()), mults, tuple(out.shape)
