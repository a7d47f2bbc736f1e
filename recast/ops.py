"""Name what each traced fx node does, independently of how it was written.

The walker only needs coarse roles (conv, norm, activation, pool, add, cat,
...) and they must be the same whether a model calls ``nn.ReLU``,
``F.relu`` or ``x.relu()``.
"""

import operator
from typing import Any

from torch import fx, nn

# nn's activation modules, less those that mix channels or hold a weight per channel
_NOT_ELEMENTWISE = (nn.Softmax, nn.Softmin, nn.LogSoftmax, nn.Softmax2d,
                    nn.MultiheadAttention, nn.GLU, nn.PReLU)
ELEMENTWISE_ACTIVATION_MODULES: tuple[type[nn.Module], ...] = tuple(
    cls for cls in vars(nn.modules.activation).values()
    if isinstance(cls, type) and issubclass(cls, nn.Module)
    and cls.__module__ == nn.modules.activation.__name__
    and not issubclass(cls, _NOT_ELEMENTWISE) and cls is not nn.Module)
# the same activations called as functions or methods: F.leaky_relu is nn.LeakyReLU
_ELEMENTWISE_KEYS = frozenset(cls.__name__.lower() for cls in ELEMENTWISE_ACTIVATION_MODULES)


def is_elementwise_activation(name: str) -> bool:
    """Whether a function or method name (``leaky_relu``, ``relu_``) calls one of
    ``ELEMENTWISE_ACTIVATION_MODULES``: one list of the idea, by module class."""
    return name.rstrip("_").replace("_", "").lower() in _ELEMENTWISE_KEYS


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
        # every nn activation module is an "act" role, softmax and PReLU too: a role
        # says where a block ends, not whether an op is elementwise (adapt asks that)
        if type(module).__module__.startswith("torch.nn.modules.activation"):
            return "act"
        # a module kept whole (a leaf): it anchors a block only if it has weights;
        # a weightless one (padding, a custom activation) goes with its neighbours
        return "module" if next(module.parameters(), None) is not None else "other"
    name = target_name(node).lower()
    if name.startswith("conv"):
        return "pool" if _fixed_filter(node, modules) else "conv"
    if name == "linear":
        return "linear"
    if is_elementwise_activation(name):
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


def _fixed_filter(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """A functional conv whose weight is a buffer, not a parameter: a fixed filter
    such as an anti-aliasing blur pool (timm's BlurPool2d), so a pool, not a conv."""
    weight = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
    if not isinstance(weight, fx.Node) or weight.op != "get_attr" or "" not in modules:
        return False
    try:
        modules[""].get_parameter(str(weight.target))
    except AttributeError:
        return True  # a buffer or a plain tensor attribute: not trained
    return False
