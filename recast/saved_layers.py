"""One layer as plain JSON ({type, args}) and back: torch.nn layers, and a fixed
allow-list of others (nothing is ever imported by a name read from a file)."""

import inspect
from functools import cache
from typing import Any

from torch import nn

from recast.errors import RecastError

_SKIP_INIT_ARGS = {"self", "device", "dtype", "args", "kwargs"}


def module_to_json(module: nn.Module) -> dict[str, Any]:
    """One torch.nn layer as {type, args}; only torch.nn classes are allowed."""
    cls = type(module)
    known = _known_layers()
    name = f"{cls.__module__}.{cls.__name__}"
    if known.get(name) is cls:
        type_name = name
    elif name in _SAME_AS_TORCH:  # saved as the torch.nn layer it computes exactly
        type_name = _SAME_AS_TORCH[name]
    elif cls.__module__.startswith("torch.nn.modules") and getattr(nn, cls.__name__, None) is cls:
        type_name = cls.__name__
    else:
        raise RecastError(f"cannot save layer {name} as data; only torch.nn layers (and "
                          f"{', '.join(sorted(known)) or 'no other'}) can be part of a saved "
                          f"student; pass --leaf-module to keep its parent whole instead")
    args = {}
    for name in inspect.signature(cls.__init__).parameters:
        if name in _SKIP_INIT_ARGS or not hasattr(module, name):
            continue
        value = getattr(module, name)
        if name == "bias":
            value = value is not None and value is not False
        args[name] = _plain(value)
    return {"type": type_name, "args": args}


def module_from_json(data: dict[str, Any]) -> nn.Module:
    cls = _known_layers().get(data["type"]) or getattr(nn, data["type"], None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise RecastError(f"student.json names unknown layer {data['type']!r}")
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in data["args"].items()}
    return cls(**args)


# subclasses whose forward is their torch.nn base's (timm's Linear only casts the
# bias under TorchScript autocast)
_SAME_AS_TORCH = {"timm.layers.linear.Linear": "Linear"}


@cache
def _known_layers() -> dict[str, type[nn.Module]]:
    """Layers outside torch.nn that a saved student may hold, by qualified name: a
    fixed allow-list (nothing is imported by a name read from a file). These are the
    channel norms the tracer keeps whole so that adapt can narrow them. Built once:
    every saved layer asks, and a missing timm would be looked for each time."""
    from torchvision.models.convnext import LayerNorm2d

    known: dict[str, type[nn.Module]] = {"torchvision.models.convnext.LayerNorm2d": LayerNorm2d}
    try:
        from timm.layers import norm
    except ImportError:  # timm is optional
        return known
    for cls in (getattr(norm, "LayerNorm2d", None), getattr(norm, "LayerNorm", None)):
        if isinstance(cls, type):
            known[f"{cls.__module__}.{cls.__name__}"] = cls
    return known


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise RecastError(f"cannot save a layer argument of type {type(value).__name__}")
