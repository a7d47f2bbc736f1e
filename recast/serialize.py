"""A student's architecture as plain JSON, so it loads with no pickle and no
teacher code: target blocks by their spec, fixed parts (stem, head, ...) as
an fx graph over an allow-list of torch.nn layers and torch functions.
"""

import builtins
import importlib
import json
import math
import operator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import fx, nn

from blocks import BlockSpec
from recast.errors import RecastError
from recast.files import atomic_save_weights, atomic_write_text
from recast.saved_layers import module_from_json, module_to_json

FORMAT = "recast.student/1"
_FUNCTION_MODULES = {"torch", "torch.nn.functional", "operator", "math",
                     "torch._C._nn", "torch._C._VariableFunctions", "torch.functional"}


def check_savable(fixed_parts: list[fx.GraphModule]) -> None:
    """Raise the save's error now, before any training, if the student's fixed parts
    (the graphs student.json holds: kept blocks, targets' tails) could not be saved
    as data at the end. Target blocks are specs and always can."""
    for graph in fixed_parts:
        graph_to_json(graph)


def graph_to_json(gm: fx.GraphModule) -> dict[str, Any]:
    """An fx GraphModule's nodes and layers as JSON."""
    modules = dict(gm.named_modules())
    layers, attrs, nodes = {}, {}, []
    for node in gm.graph.nodes:
        if node.op == "call_module":
            layers[str(node.target)] = module_to_json(modules[str(node.target)])
        if node.op == "get_attr":
            attrs[str(node.target)] = list(_fetch(gm, str(node.target)).shape)
        nodes.append({"name": node.name, "op": node.op, "target": _target(node),
                      "args": _encode(node.args), "kwargs": _encode(node.kwargs)})
    return {"layers": layers, "attrs": attrs, "nodes": nodes}


def graph_from_json(data: dict[str, Any]) -> fx.GraphModule:
    root = nn.Module()
    for path, layer in data["layers"].items():
        _place(root, path, module_from_json(layer))
    for path, shape in data["attrs"].items():
        _place(root, path, nn.Parameter(torch.zeros(shape)))
    graph = fx.Graph()
    env: dict[str, fx.Node] = {}
    for item in data["nodes"]:
        args = _decode(item["args"], env)
        kwargs = _decode(item["kwargs"], env)
        op, target = item["op"], item["target"]
        if op == "placeholder":
            node = graph.placeholder(target)
        elif op == "output":
            node = graph.output(args[0])
        elif op == "call_function":
            node = graph.call_function(_resolve(target), tuple(args), kwargs)
        elif op == "call_method":
            if target.startswith("_"):
                raise RecastError(f"student.json calls private method {target!r}")
            node = graph.call_method(target, tuple(args), kwargs)
        elif op in ("call_module", "get_attr"):
            node = graph.create_node(op, target, tuple(args), kwargs)
        else:
            raise RecastError(f"student.json has an unknown node op {op!r}")
        env[item["name"]] = node
    return fx.GraphModule(root, graph)


def _target(node: fx.Node) -> str:
    if isinstance(node.target, str):
        return node.target
    fn = node.target
    module = getattr(fn, "__module__", None) or ""
    if fn is builtins.getattr:
        return "builtins.getattr"
    for name in ("operator", "math"):
        mod = {"operator": operator, "math": math}[name]
        if getattr(mod, fn.__name__, None) is fn:
            return f"{name}.{fn.__name__}"
    for name in ("torch", "torch.nn.functional"):
        mod = importlib.import_module(name)
        if getattr(mod, fn.__name__, None) is fn:
            return f"{name}.{fn.__name__}"
    raise RecastError(f"cannot save the call to {module}.{getattr(fn, '__name__', fn)} "
                      f"as data; only torch, operator and math functions can be saved")


def _resolve(target: str) -> Any:
    if target == "builtins.getattr":
        return builtins.getattr
    module, _, name = target.rpartition(".")
    if module not in _FUNCTION_MODULES or name.startswith("_"):
        raise RecastError(f"student.json calls {target!r}, which is not allowed")
    return getattr(importlib.import_module(module), name)


def _encode(value: Any) -> Any:
    if isinstance(value, fx.Node):
        return {"node": value.name}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {"dict": {k: _encode(v) for k, v in value.items()}}
    if isinstance(value, slice):
        return {"slice": [_encode(value.start), _encode(value.stop), _encode(value.step)]}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if value is Ellipsis:
        return {"ellipsis": True}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise RecastError(f"cannot save a graph argument of type {type(value).__name__}")


def _decode(value: Any, env: dict[str, fx.Node]) -> Any:
    if isinstance(value, list):
        return [_decode(v, env) for v in value]
    if not isinstance(value, dict):
        return value
    if "node" in value:
        return env[value["node"]]
    if "tuple" in value:
        return tuple(_decode(v, env) for v in value["tuple"])
    if "dict" in value:
        return {k: _decode(v, env) for k, v in value["dict"].items()}
    if "slice" in value:
        return slice(*(_decode(v, env) for v in value["slice"]))
    if "dtype" in value:
        return getattr(torch, value["dtype"])
    if "ellipsis" in value:
        return Ellipsis
    raise RecastError(f"student.json has an unreadable argument {value}")


def _fetch(root: nn.Module, path: str) -> torch.Tensor:
    owner, _, name = path.rpartition(".")
    return getattr(root.get_submodule(owner) if owner else root, name)


def _place(root: nn.Module, path: str, value: nn.Module | nn.Parameter) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        if not hasattr(root, part):
            root.add_module(part, nn.Module())
        root = getattr(root, part)
    if isinstance(value, nn.Parameter):
        root.register_parameter(parts[-1], value)
    else:
        root.add_module(parts[-1], value)


# whole students ---------------------------------------------------------------
def architecture(student: nn.Sequential, specs: list[BlockSpec | None]) -> dict[str, Any]:
    """student.json content: per position a target spec (+ tail) or a graph."""
    entries = []
    for module, spec in zip(student, specs):
        if spec is not None:
            tail = module[1] if isinstance(module, nn.Sequential) and len(module) == 2 else None
            entries.append({"block": spec.to_json(),
                            "tail": graph_to_json(tail) if tail is not None else None})
        else:
            entries.append({"graph": graph_to_json(module)})
    return {"format": FORMAT, "blocks": entries}


def build_from_architecture(data: dict[str, Any]) -> nn.Sequential:
    if data.get("format") != FORMAT:
        raise RecastError(f"student.json has format {data.get('format')!r}; this recast "
                          f"reads {FORMAT!r}")
    modules: list[nn.Module] = []
    for entry in data["blocks"]:
        if "block" in entry:
            block = BlockSpec(**entry["block"]).build()
            if entry.get("tail") is not None:
                block = nn.Sequential(block, graph_from_json(entry["tail"]))
            modules.append(block)
        else:
            modules.append(graph_from_json(entry["graph"]))
    return nn.Sequential(*modules)


def save_student(student: nn.Sequential, specs: list[BlockSpec | None], folder: Path,
                 extra: dict[str, Any] | None = None) -> None:
    """student.safetensors + student.json in ``folder``."""
    arch = architecture(student, specs)
    arch.update(extra or {})
    atomic_save_weights(student, folder / "student.safetensors")
    atomic_write_text(folder / "student.json", json.dumps(arch, indent=1))


def load_student(path: str | Path) -> nn.Sequential:
    """Rebuild a saved student from its folder: no pickle, no teacher code."""
    return read_student(path)[0]


def read_student(path: str | Path) -> tuple[nn.Sequential, dict[str, Any]]:
    """The saved student and its student.json (input shape, class count, blocks)."""
    folder = Path(path)
    arch_file, weights = folder / "student.json", folder / "student.safetensors"
    if not arch_file.is_file() or not weights.is_file():
        raise RecastError(f"{folder} has no student.json + student.safetensors; pass the "
                          f"folder of a finished recast run")
    try:
        data = json.loads(arch_file.read_text())
    except json.JSONDecodeError as exc:
        raise RecastError(f"{arch_file} is not valid JSON ({exc}); the run folder is "
                          f"damaged") from exc
    try:
        student = build_from_architecture(data)
    except RecastError:
        raise
    except Exception as exc:  # a field missing, a width edited, a node renamed, ...
        raise RecastError(f"{arch_file} does not describe a student recast can build "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); it was "
                          f"edited or damaged: restore it from the run") from exc
    try:
        state = load_file(str(weights))
    except Exception as exc:
        raise RecastError(f"{weights} cannot be read ({exc}); the file is truncated or "
                          f"corrupt") from exc
    try:
        missing, unexpected = student.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a shape differs: student.json's widths were edited
        raise RecastError(f"{weights} does not fit {arch_file} "
                          f"({str(exc).splitlines()[1].strip()[:120] if chr(10) in str(exc) else exc}); "
                          f"one of the two was edited: restore it from the run") from exc
    if missing or unexpected:
        raise RecastError(f"{weights} does not fit student.json (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]})")
    return student.eval(), data
