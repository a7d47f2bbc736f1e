"""The ``recast`` command line: inspect, report (and the recast job itself).

Every user mistake ends as one line on stderr and exit code 2; ``--debug``
shows the traceback instead.
"""

import argparse
import json
import sys
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

from torch import nn

from recast.errors import RecastError
from recast.models import TORCHVISION_NAMES, build_model, model_names
from recast.plan import make_plan
from recast.report import compression_report, human, report_markdown
from recast.userfile import build_user_model
from recast.walker import BlockChain, walk

DATASETS = {"cifar10": (32, 10), "cifar100": (32, 100), "imagenet": (224, 1000)}


@dataclass
class Teacher:
    """A teacher model and the input shape it is walked with."""

    model: nn.Module
    input_shape: tuple[int, int, int, int]
    label: str


def add_model_args(parser: argparse.ArgumentParser, model_optional: bool = False) -> None:
    parser.add_argument("model", nargs="?" if model_optional else None,
                        help="zoo name (e.g. vgg16, resnet56, resnet50); "
                        "`recast models` lists them")
    parser.add_argument("--model-file", metavar="FILE.py:BUILDER",
                        help="your own model: BUILDER(num_classes=...) -> nn.Module")
    parser.add_argument("--dataset", choices=sorted(DATASETS),
                        help="sets input size and classes (cifar: 32x32)")
    parser.add_argument("--input-size", type=int, help="square input size in pixels")
    parser.add_argument("--num-classes", type=int, help="override the class count")
    parser.add_argument("--in-channels", type=int, default=3)
    parser.add_argument("--teacher-width", type=float, default=1.0,
                        help="channel multiplier for CIFAR-zoo teachers")


def build_teacher(args: argparse.Namespace, num_classes: int, in_channels: int,
                  input_size: int) -> nn.Module:
    """The zoo model or --model-file builder the arguments name; errors are one line."""
    if bool(args.model) == bool(args.model_file):
        raise RecastError("name a zoo model or pass --model-file FILE.py:BUILDER (one of them)")
    if args.model_file:
        return build_user_model(args.model_file, num_classes)
    try:
        return build_model(args.model, num_classes=num_classes, in_channels=in_channels,
                           width=args.teacher_width, input_size=input_size)
    except ValueError as exc:
        raise RecastError(str(exc)) from exc


def resolve_teacher(args: argparse.Namespace) -> Teacher:
    """Build the teacher the arguments name, for its input size."""
    size, classes = DATASETS.get(args.dataset or "", (None, None))
    if args.input_size:
        size = args.input_size
    if size is None:
        size = 224 if args.model in TORCHVISION_NAMES else 32
    classes = args.num_classes or classes or (10 if size <= 64 else 1000)
    shape = (1, args.in_channels, size, size)
    model = build_teacher(args, classes, args.in_channels, size)
    return Teacher(model, shape, args.model or args.model_file)


def _inspect(args: argparse.Namespace) -> None:
    teacher = resolve_teacher(args)
    chain = walk(teacher.model, teacher.input_shape)
    _fill_costs(chain)
    if args.json:
        print(json.dumps({
            "model": teacher.label, "input_shape": list(teacher.input_shape),
            "kinds": chain.kinds(), "walk_seconds": round(chain.walk_seconds, 3),
            "blocks": [b.to_json() for b in chain.blocks],
        }, indent=2))
        return
    print(f"{teacher.label}: {len(chain.blocks)} blocks "
          f"({', '.join(f'{n} {k}' for k, n in chain.kinds().items())}), "
          f"input {list(teacher.input_shape)}")
    print(f"{'#':>3}  {'block':<28} {'kind':<18} {'in->out':>12} {'stride':>6} "
          f"{'params':>9} {'mults':>9}")
    for b in chain.blocks:
        print(f"{b.index:>3}  {b.name[:28]:<28} {b.kind:<18} "
              f"{f'{b.in_channels}->{b.out_channels}':>12} {b.stride:>6} "
              f"{human(b.params):>9} {human(b.mults):>9}")


def _fill_costs(chain: BlockChain) -> None:
    import torch

    from recast.counting import count_costs

    _, parts = count_costs(chain.as_module(), torch.randn(chain.input_shape), children=True)
    for block in chain.blocks:
        cost = parts[str(block.index)]
        block.macs, block.mults = cost.macs, cost.mults


def parse_widths(args: argparse.Namespace) -> float | list[float]:
    if args.widths:
        try:
            return [float(w) for w in args.widths.split(",")]
        except ValueError:
            raise RecastError(f"--widths {args.widths!r} must be numbers like 0.4,0.4,0.5")
    return args.width


def _report(args: argparse.Namespace) -> None:
    teacher = resolve_teacher(args)
    chain = walk(teacher.model, teacher.input_shape)
    plan = make_plan(chain, args.target, parse_widths(args))
    report = compression_report(plan, latency=not args.no_latency)
    report["model"] = teacher.label
    print(json.dumps(report, indent=2) if args.json else report_markdown(report))


def _models(args: argparse.Namespace) -> None:
    for name in model_names(args.input_size):
        print(name)


def add_plan_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True,
                        help="target block kind: conv, basic, bottleneck or dense")
    parser.add_argument("--width", type=float, default=1.0,
                        help="width ratio for every recast block, in (0, 1]")
    parser.add_argument("--widths", help="one ratio per recast block: r1,r2,...")


def add_job_args(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", help="local data: .npz files, CIFAR python folder, "
                      "or ImageFolder train/ + test/")
    data.add_argument("--limit-train", type=int, help="use the first N training images")
    data.add_argument("--limit-test", type=int, help="use the first N test images")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="plain log lines, no bars")


def _run(args: argparse.Namespace) -> None:
    from recast.jobs import run_recast

    run_recast(args, parse_widths(args))


def _train(args: argparse.Namespace) -> None:
    from recast.jobs import run_train

    run_train(args)


def _eval(args: argparse.Namespace) -> None:
    from recast.jobs import run_eval

    run_eval(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recast", description="Recast a trained CNN into a smaller or simpler one.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    inspect = sub.add_parser("inspect", help="the teacher's block table")
    add_model_args(inspect, model_optional=True)
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(func=_inspect)
    report = sub.add_parser("report", help="teacher vs planned student: params, "
                            "mults, MACs, latency")
    add_model_args(report, model_optional=True)
    add_plan_args(report)
    report.add_argument("--json", action="store_true")
    report.add_argument("--no-latency", action="store_true", help="skip timing")
    report.set_defaults(func=_report)
    job = sub.add_parser("run", help="recast a teacher (also: recast MODEL ...)")
    add_model_args(job, model_optional=True)
    add_plan_args(job)
    add_job_args(job)
    job.add_argument("--teacher", help="teacher state dict (.safetensors, .pt/.pth); "
                     "without it a teacher is trained first")
    job.add_argument("--preset", choices=["paper", "fast", "smoke"], default="fast")
    job.add_argument("--method", choices=["recast", "kd", "kd-mse", "scratch"],
                     default="recast", help="baselines train the same student for the "
                     "same number of images")
    job.add_argument("--budget", type=float, help="baselines: epochs of images (default: "
                     "what the recast preset uses)")
    job.add_argument("--budget-epochs", type=float,
                     help="epochs of images for the whole recast (the fast preset: 18)")
    job.add_argument("--block-fraction", type=float,
                     help="share of the budget spent on block steps (fast: 0.2)")
    job.add_argument("--epochs-per-block", type=float)
    job.add_argument("--finetune-epochs", type=float)
    job.add_argument("--lr", type=float)
    job.add_argument("--batch-size", type=int)
    job.add_argument("--optimizer", choices=["adam", "sgd"])
    job.add_argument("--scheduler", choices=["cosine", "step", "constant"])
    job.add_argument("--init", choices=["teacher", "random"],
                     help="warm start target blocks from the teacher's channels, or not")
    job.add_argument("--freeze-prefix", action="store_true",
                     help="train only block i and i+1 at step i")
    job.add_argument("--block-training", choices=["sequential", "local"],
                     help="sequential: one block after another through the prefix (the "
                     "authors'); local: all target blocks in one pass, each on its own input")
    job.add_argument("--finetune-loss", choices=["mse-ce", "kd", "ce"],
                     help="mse-ce: logit MSE + CE (the authors'); kd: Hinton KD; ce: labels "
                          "only (no teacher forward: cheapest)")
    job.add_argument("--finetune-optimizer", choices=["adam", "sgd"])
    job.add_argument("--finetune-lr", type=float)
    job.add_argument("--teacher-epochs", type=float, help="when training the teacher")
    job.add_argument("--teacher-lr", type=float)
    job.add_argument("--out", help="run folder (default runs/MODEL-TARGET-TIME)")
    job.add_argument("--resume", action="store_true",
                     help="continue the interrupted run in --out from its last checkpoint")
    job.add_argument("--force", action="store_true",
                     help="start over in an --out that holds a run (replaces its run files)")
    job.set_defaults(func=_run)
    train = sub.add_parser("train", help="train a teacher and save its state dict")
    add_model_args(train, model_optional=True)
    add_job_args(train)
    train.add_argument("--epochs", type=float)
    train.add_argument("--lr", type=float)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--out", help="output .safetensors file")
    train.set_defaults(func=_train)
    evaluate = sub.add_parser("eval", help="re-evaluate a saved student")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--data-dir")
    evaluate.add_argument("--dataset", choices=["cifar10", "cifar100"])
    evaluate.add_argument("--limit-test", type=int)
    evaluate.set_defaults(func=_eval)
    models = sub.add_parser("models", help="list model names")
    models.add_argument("--input-size", type=int)
    models.set_defaults(func=_models)
    return parser


def run(argv: Sequence[str], handlers: dict[str, Callable[[argparse.Namespace], None]]
        | None = None) -> int:
    """Parse and run; RecastError becomes one line and exit code 2."""
    parser = build_parser()
    argv = list(argv)
    commands = {"run", "train", "eval", "inspect", "report", "models"}
    first = next((i for i, a in enumerate(argv) if a != "--debug"), None)
    if first is not None and argv[first] not in commands and not argv[first].startswith("-"):
        argv.insert(first, "run")  # `recast vgg16 --target conv` is `recast run vgg16 ...`
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        args.func(args)
    except (RecastError, ValueError, OSError) as exc:
        if args.debug:
            raise
        print(f"recast: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recast: interrupted", file=sys.stderr)
        return 130
    return 0


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    argv = [a for a in sys.argv[1:] if a != "--debug"]
    sys.exit(run((["--debug"] if debug else []) + argv))
