"""A recast job as typed data: what the command line asked for, checked.

The CLI parses into a :class:`RunSpec`; every number in it is validated here,
before any data is read, any folder made or any model trained. The spec is
what a run folder saves (run-args.json) and what ``--resume`` reads back.
"""

import argparse
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from recast.errors import RecastError
from recast.losses import baseline_reads_labels
from recast.presets import make_config
from recast.settings import RecastConfig
from recast.teacher import ModelSpec
from recast.training import check_device
from recast.value_rules import positive, share

# settings that cannot change a run's result: a resume may give them anew
SHOWN_ONLY = ("quiet", "device", "debug", "resume", "force", "out")


@dataclass
class RunSpec:
    """Everything a recast job (or a baseline) needs, as the user gave it."""

    model: ModelSpec
    target: str
    widths: float | list[float]
    config: RecastConfig
    preset: str = "fast"
    data_dir: str | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    teacher: str | None = None  # a trained teacher's state dict
    teacher_epochs: float | None = None
    teacher_lr: float | None = None
    method: str = "recast"
    budget: float | None = None
    out: str | None = None
    seed: int = 0
    device: str = "auto"
    quiet: bool = False
    given: dict[str, Any] = field(default_factory=dict)  # flags the user typed
    synthetic_images: int | None = None  # --data synthetic: a transfer set of this size
    synthetic_steps: int = 200
    plan: dict[str, Any] = field(default_factory=dict)  # make_plan's options: budgets, ...
    generations: int = 1  # born-again: the student teaches the next recast of the plan

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunSpec":
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["model"] = ModelSpec(**data["model"])
        values["config"] = RecastConfig(**data["config"])
        return cls(**values)

    def settings(self) -> dict[str, Any]:
        """Every setting by its flag's name, for comparing with new flags."""
        flat = {k: v for k, v in asdict(self).items() if k not in ("model", "config", "given")}
        flat.update(asdict(self.model))
        flat.update(asdict(self.config))
        flat["width"] = flat["widths"] = self.widths
        return flat


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The teacher architecture named on the command line, its numbers checked."""
    _at_least("--input-size", args.input_size, 1)
    _at_least("--num-classes", args.num_classes, 2)
    _at_least("--in-channels", args.in_channels, 1)
    if args.teacher_width is not None and not positive(args.teacher_width):
        raise RecastError(f"--teacher-width {args.teacher_width} must be a positive "
                          f"multiplier, e.g. 0.25")
    return ModelSpec(args.model, args.model_file, args.dataset, args.input_size,
                     args.num_classes, args.in_channels or 3, args.teacher_width or 1.0,
                     list(getattr(args, "leaf_module", None) or []))


def plan_options(args: argparse.Namespace) -> dict[str, Any]:
    """--budget-params / --budget-mults / --allow-bigger / --include-stem /
    --round-channels as make_plan's keywords."""
    options: dict[str, Any] = {}
    for name in ("budget_params", "budget_mults"):
        value = getattr(args, name, None)
        if value is not None:
            if not share(value):
                raise RecastError(f"--{name.replace('_', '-')} {value} must be in (0, 1], e.g. "
                                  f"0.25 for 4x fewer")
            options[name] = value
    for name in ("allow_bigger", "include_stem"):
        if getattr(args, name, None):
            options[name] = True
    multiple = getattr(args, "round_channels", None)
    if multiple is not None:
        if multiple < 1:
            raise RecastError(f"--round-channels {multiple} must be at least 1, e.g. 8")
        options["round_channels"] = multiple
    return options


def parse_widths(args: argparse.Namespace) -> float | list[float] | None:
    """--widths r1,r2,... or --width r; every ratio in (0, 1]; None under a budget."""
    if args.width is None and not args.widths and plan_options(args).keys() & {
            "budget_params", "budget_mults"}:
        return None
    if args.widths:
        try:
            ratios = [float(w) for w in args.widths.split(",")]
        except ValueError:
            raise RecastError(f"--widths {args.widths!r} must be numbers like 0.4,0.4,0.5")
    else:
        ratios = [1.0 if args.width is None else args.width]
    for r in ratios:
        if not share(r):
            raise RecastError(f"width ratio {r} is outside (0, 1]; use e.g. --width 0.4")
    return ratios if args.widths else ratios[0]


def run_spec(args: argparse.Namespace, config_fields: list[str]) -> RunSpec:
    """The job the parsed arguments describe; one line names any bad value."""
    check_data_and_device(args)
    check_positive({"--teacher-epochs": args.teacher_epochs, "--teacher-lr": args.teacher_lr,
                    "--budget": args.budget})
    preset = args.preset or "fast"
    config = make_config(preset, {name: getattr(args, name) for name in config_fields},
                         seed=args.seed or 0)
    if config.labels == "none":
        check_labelless(args.teacher, args.method or "recast", "--labels none reads no label")
    given = given_flags(args)
    synthetic = None
    if getattr(args, "data", None) == "synthetic":
        if not args.teacher:
            raise RecastError("--data synthetic needs the teacher to synthesise from; pass a "
                              "trained one with --teacher FILE")
        synthetic = args.synthetic_images or 2048
        _at_least("--synthetic-images", synthetic, 1)
        _at_least("--synthetic-steps", args.synthetic_steps, 1)
    elif args.synthetic_images is not None or args.synthetic_steps is not None:
        raise RecastError("--synthetic-images and --synthetic-steps belong to --data synthetic; "
                          "add it, or drop them")
    spec = RunSpec(model_spec(args), args.target, parse_widths(args), config, preset,
                   args.data_dir, args.limit_train, args.limit_test, args.teacher,
                   args.teacher_epochs, args.teacher_lr, args.method or "recast", args.budget,
                   args.out, args.seed or 0, args.device or "auto", bool(args.quiet), given)
    spec.synthetic_images = synthetic
    spec.synthetic_steps = args.synthetic_steps or 200
    spec.plan = plan_options(args)
    spec.generations = _generations(args, spec.method)
    return spec


def _generations(args: argparse.Namespace, method: str) -> int:
    """--generations N: at least 1, and only for recasts."""
    generations = getattr(args, "generations", None)
    _at_least("--generations", generations, 1)
    if generations is not None and generations > 1 and method != "recast":
        raise RecastError(f"--generations recasts the student again; --method {method} "
                          f"trains it once: drop --generations")
    return generations or 1


def check_labelless(teacher: str | None, method: str, reason: str) -> None:
    """Refuse what a run without labels cannot do; ``reason`` says why it has none."""
    if method != "recast" and baseline_reads_labels(method):
        raise RecastError(f"--method {method} learns from labels, but {reason}; use --method "
                          f"kd (Hinton KD on the teacher's outputs alone) or recast")
    if not teacher:
        raise RecastError(f"{reason}, so no teacher can be trained here; pass a trained "
                          f"teacher with --teacher FILE")


def given_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The flags the user typed (parsers default every flag to None)."""
    return {k: v for k, v in vars(args).items()
            if v is not None and v is not False and k not in ("func", "command")}


def check_positive(values: dict[str, float | None]) -> None:
    """Each given value (by its flag) a positive finite number."""
    for flag, value in values.items():
        if value is not None and not positive(value):
            raise RecastError(f"{flag} {value} must be a positive number")


def check_data_and_device(args: argparse.Namespace) -> None:
    """The data limits and the device name, as every job reads them."""
    _at_least("--limit-train", args.limit_train, 1)
    _at_least("--limit-test", args.limit_test, 1)
    check_device(args.device or "auto")


def differing(saved: RunSpec, given: dict[str, Any]) -> list[str]:
    """Flags given now that differ from what the saved run used, as 'flag: was -> now'."""
    settings = saved.settings()
    out = []
    for name, value in given.items():
        if name in SHOWN_ONLY or name not in settings:
            continue
        was = settings[name]
        if name == "widths" and isinstance(value, str):
            value = [float(v) for v in value.split(",")]
        if name in ("teacher", "data_dir") and was is not None:
            value, was = str(Path(value).resolve()), str(Path(was).resolve())
        if was != value:
            out.append(f"--{name.replace('_', '-')} {value} (the run has {was})")
    return out


def _at_least(flag: str, value: int | None, low: int) -> None:
    if value is not None and value < low:
        raise RecastError(f"{flag} {value} must be at least {low}"
                          f"{'; leave it out to use every image' if 'limit' in flag else ''}")
