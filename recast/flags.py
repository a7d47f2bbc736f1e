"""The command-line flags of every RecastConfig field, derived from its metadata
(recast/settings.py), so a new knob is one field there and its flag follows.
"""

from dataclasses import fields
from typing import Any, Callable

from recast.presets import PRESETS
from recast.settings import RecastConfig, flag_name


def config_flags() -> list[tuple[str, dict[str, Any]]]:
    """(flag, argparse keyword arguments) for every config field with a flag; help
    shows what each preset sets, so `recast run --help` hides no default."""
    flags = []
    for f in fields(RecastConfig):
        meta = f.metadata
        if not meta.get("flag"):
            continue
        by_preset = ", ".join(f"{p}: {v[f.name]}" for p, v in PRESETS.items() if f.name in v)
        default = f"default {f.default}" if f.default is not None else "unset by default"
        help_text = f"{meta['help']} ({by_preset + '; ' if by_preset else ''}{default})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text}
        if f.type is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = _parser_type(f.type)
            if meta.get("choices"):
                kwargs["choices"] = list(meta["choices"])
        flags.append((flag_name(f.name), kwargs))
    return flags


def _parser_type(annotation: Any) -> Callable[[str], Any]:
    """int, float or str from a field's annotation (``float | None`` is float)."""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return int if text.startswith("int") else float if "float" in text else str
