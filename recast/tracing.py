"""Trace a teacher with torch.fx, answering shape questions from a real input.

torch.fx replaces tensors by proxies, so Python that only *reads* a shape or
the device (``max(pad, 0)`` in a "same" padding helper, ``if x.device.type ==
"cpu"``) cannot pick a branch, and fx blames "control flow". This tracer keeps
shape arithmetic symbolic (so the graph still works at any batch size) but,
when Python needs a bool or a length of a value derived only from shapes,
devices or dtypes, it computes that value on the example input. Branches on
tensor *values* still fail, naming the module, the line and the
``--leaf-module`` fix. Any other untraceable Python inside a submodule makes
that submodule a leaf (run whole, so still exact) and leaves a note.
"""

import functools
import linecache
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import fx, nn
from torch.fx.proxy import Attribute, TraceError

from recast.errors import WalkError

_SHAPE_ATTRS = {"shape", "device", "dtype", "ndim", "is_cuda", "is_cpu", "layout"}
_SHAPE_METHODS = {"size", "dim", "ndimension", "numel", "nelement", "get_device",
                  "is_floating_point", "is_complex", "element_size"}
# User subclasses of these keep the layer's meaning (weights, kernel): trace them
# whole, e.g. a Conv2d with "same" padding or a weight-standardised conv, so the
# walker still sees a conv. Norm subclasses too: ConvNeXt's LayerNorm2d (a permute
# around F.layer_norm) or timm's BatchNormAct2d / GroupNormAct (F.batch_norm on the
# layer's own tensors, then an activation) would otherwise leave functional calls
# that adapt cannot rebuild for a new width; kept whole, adapt resizes the layer.
_LAYERS = (nn.modules.conv._ConvNd, nn.Linear, nn.LayerNorm,
           nn.modules.batchnorm._NormBase, nn.GroupNorm)
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep


class _TensorBranch(TraceError):
    """Python control flow decided by tensor values: no graph can hold it."""


class _ExampleFailed(Exception):
    """Running the example input to answer a shape question failed."""


class _Proxy(fx.Proxy):
    """A proxy whose ``len()`` is known when it derives from shapes only."""

    def __getattr__(self, k: str) -> "_Attribute":
        return _Attribute(self, k)

    def __len__(self) -> int:
        tracer = self.tracer
        if isinstance(tracer, ShapeTracer) and tracer.is_static(self.node):
            return len(tracer.value(self.node))
        return fx.Proxy.__len__(self)


class _Attribute(_Proxy, Attribute):
    """``x.shape`` and friends, with the same ``len()`` as :class:`_Proxy`."""


class ShapeTracer(fx.Tracer):
    """An fx tracer with leaf modules, wrapped functions and concrete shapes."""

    def __init__(self, example: torch.Tensor, leaves: Sequence[str] = (),
                 functions: Sequence[Callable[..., Any]] = ()) -> None:
        super().__init__(autowrap_functions=tuple(functions))
        self.example = example
        self.leaves = set(leaves)
        self._static: dict[fx.Node, bool] = {}
        self._values: dict[fx.Node, Any] = {}
        self._running = False  # inside a concrete run: call modules plainly

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if module_qualified_name in self.leaves or type(m).__name__ in self.leaves:
            return True
        return isinstance(m, _LAYERS) or super().is_leaf_module(m, module_qualified_name)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _Proxy(node, self)

    def call_module(self, m: nn.Module, forward: Callable[..., Any],
                    args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._running:
            return forward(*args, **kwargs)
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception as exc:
            if getattr(exc, "recast_module", None) is None:  # the innermost module
                exc.recast_module = m  # type: ignore[attr-defined]
            raise

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        if self._running:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def create_node(self, kind: str, target: Any, args: Any, kwargs: Any,
                    name: str | None = None, type_expr: Any | None = None) -> fx.Node:
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        if kind == "call_function" and target is getattr:
            static = args[1] in _SHAPE_ATTRS or self.is_static(node.all_input_nodes[0])
        elif kind == "call_method" and target in _SHAPE_METHODS:
            static = True
        else:
            static = kind in ("call_function", "call_method") and all(
                self.is_static(n) for n in node.all_input_nodes)
        self._static[node] = static
        return node

    def is_static(self, node: fx.Node) -> bool:
        """True if the node's value depends on shapes, devices, dtypes only."""
        return self._static.get(node, False)

    def value(self, node: fx.Node) -> Any:
        """The node's value on the example input (runs the graph up to it)."""
        if node not in self._values:
            self._running = True
            try:
                with torch.no_grad():
                    for n in self.graph.nodes:
                        if n not in self._values:
                            self._values[n] = self._run(n)
                        if n is node:
                            break
            except Exception as exc:
                raise _ExampleFailed(f"{type(exc).__name__}: {_first_line(exc)}") from exc
            finally:
                self._running = False
        return self._values[node]

    def _run(self, node: fx.Node) -> Any:
        args, kwargs = fx.node.map_arg((node.args, node.kwargs), self._values.__getitem__)
        if node.op == "placeholder":
            return self.example.clone()  # in-place ops must not change the caller's
        if node.op == "get_attr":
            return functools.reduce(getattr, str(node.target).split("."), self.root)
        if node.op == "call_module":
            return self.root.get_submodule(str(node.target))(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], str(node.target))(*args[1:], **kwargs)
        return node.target(*args, **kwargs)  # type: ignore[operator]

    def to_bool(self, obj: fx.Proxy) -> bool:
        if self.is_static(obj.node):
            return bool(self.value(obj.node))
        raise _TensorBranch("Python control flow on tensor values")

    def iter(self, obj: fx.Proxy) -> Iterator[Any]:
        if self.is_static(obj.node):
            return iter([obj[i] for i in range(len(self.value(obj.node)))])
        return super().iter(obj)


def trace_module(
    model: nn.Module, example: torch.Tensor, leaf_modules: Sequence[str] = (),
    leaf_functions: Sequence[Callable[..., Any]] = (),
) -> tuple[fx.GraphModule, list[str]]:
    """Trace ``model``; returns the graph module and notes on automatic leaves."""
    leaves = set(_checked_leaves(model, leaf_modules))
    notes: list[str] = []
    while True:
        tracer = ShapeTracer(example, sorted(leaves), leaf_functions)
        try:
            graph = tracer.trace(model)
            return fx.GraphModule(tracer.root, graph, type(model).__name__), notes
        except _ExampleFailed as exc:
            raise input_error(model, example, str(exc)) from exc
        except Exception as exc:  # fx raises many kinds; all mean "not traceable here"
            path, module = _failed_module(model, exc)
            where = _where(exc)
            if isinstance(exc, _TensorBranch) or not path or path in leaves:
                raise WalkError(_message(path, module, where, exc)) from exc
            leaves.add(path)
            notes.append(f"kept {path} ({type(module).__name__}) whole as one leaf: "
                         f"torch.fx cannot trace {where} ({_reason(exc)})")


def input_error(model: nn.Module, example: torch.Tensor, reason: str) -> WalkError:
    """The error for a model that fails on the example input itself."""
    return WalkError(
        f"{type(model).__name__} fails on an input of shape {tuple(example.shape)} "
        f"({reason[:200]}); pass the input size the model expects (--input-size)")


def _checked_leaves(model: nn.Module, names: Sequence[str]) -> list[str]:
    named = [(path, m) for path, m in model.named_modules() if path]
    known = {path for path, _ in named} | {type(m).__name__ for _, m in named}
    unknown = [name for name in names if name not in known]
    if unknown:
        path, module = named[-1] if named else ("", model)
        hint = (f"pass a class name (e.g. {type(module).__name__}) or a module path "
                f"(e.g. {path})") if path else "the model has no submodules to keep whole"
        raise WalkError(f"--leaf-module {unknown[0]} matches no submodule of "
                        f"{type(model).__name__}; {hint}")
    return list(names)


def _failed_module(model: nn.Module, exc: BaseException) -> tuple[str, nn.Module]:
    """(qualified path, module) whose forward raised; ('', model) for the root."""
    module = getattr(exc, "recast_module", None)
    for path, m in model.named_modules():
        if m is module:
            return path, m
    return "", model


def _where(exc: BaseException) -> str:
    """'file:line' of the deepest user frame (not torch, not this file)."""
    found = None
    for frame, line in traceback.walk_tb(exc.__traceback__):
        name = frame.f_code.co_filename
        if not name.startswith(_TORCH_DIR) and name != __file__:
            found = (name, line)
    if found is None:
        return "an unknown line"
    name, line = found
    relative = os.path.relpath(name)
    shown = name if relative.startswith("..") else relative
    source = linecache.getline(name, line).strip()
    return f"{shown}:{line}" + (f" ({source[:80]!r})" if source else "")


def _message(path: str, module: nn.Module, where: str, exc: BaseException) -> str:
    """One line: the module and line at fault, then the fix."""
    cls = type(module).__name__
    who = f"{path} ({cls})" if path else f"{cls} (the model itself)"
    if isinstance(exc, _TensorBranch):
        problem = f"cannot trace {who}: Python control flow on tensor values at {where}"
    else:
        problem = f"cannot trace {who} at {where} ({_reason(exc)})"
    if path:
        return (f"{problem}; pass --leaf-module {cls} (leaf_modules=['{cls}'] in Python) "
                f"to keep that module whole")
    return (f"{problem}; move that code into a submodule and pass its class to "
            f"--leaf-module, or make the forward free of it")


def _reason(exc: BaseException) -> str:
    """'Type: first sentence' of an error, short enough for one line."""
    return f"{type(exc).__name__}: {_first_line(exc).split('. ')[0][:160]}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
