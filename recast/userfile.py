"""Load a user's own model builder from ``path/to/file.py:builder``."""

import importlib.util
import sys
from pathlib import Path
from typing import Callable

from torch import nn

from recast.errors import RecastError


def load_builder(spec: str) -> Callable[..., nn.Module]:
    """The callable named in ``file.py:name``; errors say what is wrong."""
    path_text, sep, name = spec.rpartition(":")
    if not sep or not path_text or not name:
        raise RecastError(
            f"--model-file {spec!r} must look like path/to/file.py:builder_name"
        )
    path = Path(path_text)
    if not path.is_file():
        raise RecastError(f"--model-file: no such file {path}; check the path")
    module_name = f"recast_user_{path.stem}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise RecastError(f"--model-file: {path} is not a Python file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        raise RecastError(
            f"--model-file: importing {path} failed ({type(exc).__name__}: {exc})"
        ) from exc
    builder = getattr(module, name, None)
    if not callable(builder):
        found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise RecastError(
            f"--model-file: {path} has no callable {name!r}; it defines: "
            f"{', '.join(found[:10]) or 'nothing callable'}"
        )
    return builder


def build_user_model(spec: str, num_classes: int) -> nn.Module:
    """Call the user's builder with ``num_classes``; it must return a module."""
    builder = load_builder(spec)
    try:
        model = builder(num_classes=num_classes)
    except Exception as exc:
        raise RecastError(
            f"--model-file: {spec}(num_classes={num_classes}) failed "
            f"({type(exc).__name__}: {exc}); the builder must accept num_classes"
        ) from exc
    if not isinstance(model, nn.Module):
        raise RecastError(
            f"--model-file: {spec} returned {type(model).__name__}, not an nn.Module"
        )
    return model
