"""The ``recast`` command line: parse, check, hand typed settings to the jobs.

Every user mistake ends as one line on stderr and exit code 2 (``--debug``
shows the traceback instead), before any data is read or any folder made.
SIGINT and SIGTERM say how to continue the run they stopped.
"""

import argparse
import json
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from blocks import BLOCK_KINDS
from recast.baselines import BASELINES
from recast.block_costs import fill_costs
from recast.errors import RecastError, Stopped
from recast.export import export_onnx  # onnx itself is imported only when exporting
from recast.eval_job import run_eval
from recast.jobs import run_recast
from recast.teacher_job import run_train
from recast.models import model_names
from recast.plan import make_plan
from recast.report import compression_report, human, report_markdown
from recast.runfolder import resume_spec
from recast.runspec import check_data_and_device, check_positive, given_flags, model_spec, \
    parse_widths, plan_options, run_spec
from recast.flags import config_flags
from recast.presets import PRESETS
from recast.teacher import DATASETS, untrained_teacher
from recast.walker import walk

CONFIG_FIELDS = [kwargs["dest"] for _, kwargs in config_flags()]
COMMANDS = ("run", "train", "eval", "inspect", "report", "models", "export")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="zoo name (e.g. vgg16, resnet56, resnet50); "
                        "`recast models` lists them")
    parser.add_argument("--model-file", metavar="FILE.py:BUILDER",
                        help="your own model: BUILDER(num_classes=...) -> nn.Module")
    parser.add_argument("--dataset", choices=sorted(DATASETS),
                        help="sets input size and classes (cifar: 32x32)")
    parser.add_argument("--input-size", type=int, help="square input size in pixels")
    parser.add_argument("--num-classes", type=int, help="override the class count")
    parser.add_argument("--in-channels", type=int, help="image channels (default 3)")
    parser.add_argument("--teacher-width", type=float,
                        help="channel multiplier for CIFAR-zoo teachers (default 1.0)")
    parser.add_argument("--leaf-module", action="append", metavar="NAME",
                        help="trace this module (class name or path) whole, never inside; "
                             "repeatable: for code torch.fx cannot trace")


def add_plan_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--target", required=required,
                        help="target block kind: " + "; ".join(
                            f"{k}: {v.summary}" for k, v in BLOCK_KINDS.items()))
    parser.add_argument("--width", type=float,
                        help="width ratio for every recast block, in (0, 1] (default 1.0)")
    parser.add_argument("--widths", help="one ratio per recast block: r1,r2,...")
    parser.add_argument("--budget-params", type=float, metavar="R",
                        help="instead of --width: the one width ratio whose student has R x "
                             "the teacher's params (0.25 = 4x fewer)")
    parser.add_argument("--budget-mults", type=float, metavar="R",
                        help="instead of --width: the width ratio whose student has R x the "
                             "teacher's mults")
    parser.add_argument("--allow-bigger", action="store_true", default=None,
                        help="recast blocks even where the target has more params or mults "
                             "than the teacher block (kept by default; the report says why)")
    parser.add_argument("--include-stem", action="store_true", default=None,
                        help="recast the stem blocks too (kept by default)")
    parser.add_argument("--round-channels", type=int, metavar="N",
                        help="round every target width to a multiple of N (8 or 16 suit GPUs "
                             "and NPUs); the report shows the cost")


def add_job_args(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", help="local data: .npz files, CIFAR python folder, "
                      "or ImageFolder train/ + test/")
    data.add_argument("--limit-train", type=int, help="use the first N training images")
    data.add_argument("--limit-test", type=int, help="use the first N test images")
    parser.add_argument("--device", help="auto (CUDA when present; the default), cpu, cuda")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--quiet", action="store_true", default=None,
                        help="plain log lines, no bars")


def add_run_args(job: argparse.ArgumentParser) -> None:
    add_model_args(job)
    add_plan_args(job, required=False)
    add_job_args(job)
    job.add_argument("--teacher", help="teacher state dict (.safetensors, .pt/.pth); "
                     "without it a teacher is trained first")
    job.add_argument("--preset", choices=list(PRESETS),
                     help="paper: the authors' schedule; fast: the CPU benchmark's winner "
                          "(the default); smoke: seconds")
    job.add_argument("--method", choices=["recast", *BASELINES],
                     help="recast (the default), or a baseline training the same student "
                          "for the same number of images")
    job.add_argument("--budget", type=float, help="baselines: epochs of images (default: "
                     "what the recast preset uses)")
    job.add_argument("--generations", type=int, metavar="N", help="born-again: the finished "
                     "student teaches the next recast of the same plan, N recasts in all (1)")
    settings = job.add_argument_group("recast settings (default: the preset's)")
    for flag, kwargs in config_flags():
        settings.add_argument(flag, **kwargs)
    job.add_argument("--data", choices=["files", "synthetic"],
                     help="files: the images of --data-dir (the default); synthetic: none, "
                          "a transfer set synthesised from --teacher's BN statistics "
                          "(--data-dir then gives the test set only)")
    job.add_argument("--synthetic-images", type=int, help="--data synthetic: images (2048)")
    job.add_argument("--synthetic-steps", type=int,
                     help="--data synthetic: optimisation steps per batch (200)")
    job.add_argument("--teacher-epochs", type=float, help="when training the teacher")
    job.add_argument("--teacher-lr", type=float, help="when training the teacher")
    job.add_argument("--out", help="run folder (default runs/MODEL-TARGET-TIME)")
    job.add_argument("--resume", nargs="?", const=True, metavar="DIR",
                     help="continue the interrupted run in DIR (or in --out) from its last "
                          "checkpoint, with its own settings")
    job.add_argument("--force", action="store_true",
                     help="start over in an --out that holds a run (replaces its run files)")


def _inspect(args: argparse.Namespace) -> None:
    spec = model_spec(args)
    teacher, shape = untrained_teacher(spec)
    chain = _walk(teacher, shape, spec.leaf_modules)
    fill_costs(chain)
    if args.json:
        print(json.dumps({"model": spec.label, "input_shape": list(shape),
                          "kinds": chain.kinds(), "walk_seconds": round(chain.walk_seconds, 3),
                          "blocks": [b.to_json() for b in chain.blocks]}, indent=2))
        return
    print(f"{spec.label}: {len(chain.blocks)} blocks "
          f"({', '.join(f'{n} {k}' for k, n in chain.kinds().items())}), input {list(shape)}")
    print(f"{'#':>3}  {'block':<28} {'kind':<18} {'in->out':>12} {'stride':>6} "
          f"{'params':>9} {'mults':>9}")
    for b in chain.blocks:
        print(f"{b.index:>3}  {b.name[:28]:<28} {b.kind:<18} "
              f"{f'{b.in_channels}->{b.out_channels}':>12} {b.stride:>6} "
              f"{human(b.params):>9} {human(b.mults):>9}")


def _walk(teacher: Any, shape: tuple[int, ...], leaf_modules: list[str]) -> Any:
    chain = walk(teacher, shape, leaf_modules=leaf_modules)
    for note in chain.notes:
        print(f"recast: note: {note}", file=sys.stderr)
    return chain


def _report(args: argparse.Namespace) -> None:
    if args.width is None and not args.widths and not (args.budget_params or args.budget_mults):
        raise RecastError("recast report needs --width R (or --widths r1,r2,..., or "
                          "--budget-params/--budget-mults R): the student's size, e.g. "
                          "--width 0.5")
    spec = model_spec(args)
    teacher, shape = untrained_teacher(spec)
    plan = make_plan(_walk(teacher, shape, spec.leaf_modules), args.target, parse_widths(args),
                     **plan_options(args))
    report = compression_report(plan, latency=not args.no_latency, onnx=not args.no_latency)
    report["model"] = spec.label
    print(json.dumps(report, indent=2) if args.json else report_markdown(report))


def _run(args: argparse.Namespace) -> None:
    if args.resume is True and not args.out:
        raise RecastError("--resume needs the run's folder: recast --resume DIR")
    folder = args.resume if isinstance(args.resume, str) else args.out if args.resume else None
    if folder is not None:
        run_recast(resume_spec(Path(folder), given_flags(args)), resume=True)
        return
    if args.target is None:
        raise RecastError(f"--target is required: the block kind to recast into "
                          f"({', '.join(BLOCK_KINDS)})")
    run_recast(run_spec(args, CONFIG_FIELDS), force=args.force)


def _train(args: argparse.Namespace) -> None:
    spec = model_spec(args)
    check_data_and_device(args)
    check_positive({"--epochs": args.epochs, "--lr": args.lr})
    if args.batch_size < 1:
        raise RecastError(f"--batch-size {args.batch_size} must be at least 1")
    run_train(spec, args.data_dir, (args.limit_train, args.limit_test), args.epochs, args.lr,
              args.batch_size, args.out, args.seed or 0, args.device or "auto",
              bool(args.quiet), args.resume)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line like every other recast error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"recast: error: {message} (`{self.prog} --help` lists the options)\n")


def _export(args: argparse.Namespace) -> None:
    print(json.dumps(export_onnx(args.run_dir, args.onnx, opset=args.opset,
                                 dynamic_batch=args.dynamic_batch, teacher=args.teacher),
                     indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="recast", description="Recast a trained CNN into a smaller or simpler one.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    inspect = sub.add_parser("inspect", help="the teacher's block table")
    add_model_args(inspect)
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(func=_inspect)
    report = sub.add_parser("report", help="teacher vs planned student: params, "
                            "mults, MACs, latency")
    add_model_args(report)
    add_plan_args(report)
    report.add_argument("--json", action="store_true")
    report.add_argument("--no-latency", action="store_true",
                        help="skip timing (PyTorch, and ONNX Runtime when installed)")
    report.set_defaults(func=_report)
    job = sub.add_parser("run", help="recast a teacher (also: recast MODEL ...)")
    add_run_args(job)
    job.set_defaults(func=_run)
    train = sub.add_parser("train", help="train a teacher and save its state dict")
    add_model_args(train)
    add_job_args(train)
    train.add_argument("--epochs", type=float, help="default 15")
    train.add_argument("--lr", type=float, help="default 0.05 (SGD, nesterov, cosine)")
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--out", help="output .safetensors file")
    train.add_argument("--resume", action="store_true", help="continue the training of --out "
                       "from its checkpoint (kept after every pass, beside --out)")
    train.set_defaults(func=_train)
    evaluate = sub.add_parser("eval", help="re-evaluate a saved student (on the data the "
                              "run used, unless given other data)")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--data-dir")
    evaluate.add_argument("--dataset", choices=["cifar10", "cifar100"])
    evaluate.add_argument("--limit-test", type=int)
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(func=lambda a: run_eval(a.run_dir, a.dataset, a.data_dir,
                                                  a.limit_test, a.quiet))
    export = sub.add_parser("export", help="the student (or teacher) as ONNX, checked "
                            "against PyTorch and timed in ONNX Runtime")
    export.add_argument("run_dir")
    export.add_argument("--onnx", required=True, metavar="FILE", help="the file to write")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    export.add_argument("--dynamic-batch", action="store_true",
                        help="any batch size (default: batch 1)")
    export.add_argument("--teacher", action="store_true", help="export the run's teacher")
    export.set_defaults(func=_export)
    models = sub.add_parser("models", help="list model names")
    models.add_argument("--input-size", type=int)
    models.set_defaults(func=lambda a: print("\n".join(model_names(a.input_size))))
    return parser


def _with_command(argv: list[str]) -> list[str]:
    """`recast vgg16 --target conv`, `recast --model-file f.py:b ...` and `recast
    --resume DIR` all mean `recast run ...`."""
    first = next((i for i, a in enumerate(argv) if a != "--debug"), None)
    if first is not None and argv[first] not in COMMANDS and argv[first] not in ("-h", "--help"):
        argv.insert(first, "run")
    return argv


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise Stopped("SIGTERM")


def run(argv: Sequence[str]) -> int:
    """Parse and run; RecastError becomes one line and exit code 2."""
    args = build_parser().parse_args(_with_command(list(argv)))
    warnings.filterwarnings("ignore", category=FutureWarning)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        args.func(args)
    except (RecastError, ValueError, OSError) as exc:
        if args.debug:
            raise
        print(f"recast: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        name = stop.signal_name if isinstance(stop, Stopped) else "SIGINT"
        then = stop.then if isinstance(stop, Stopped) else None
        print(f"recast: stopped by {name}{f'; {then}' if then else ''}", file=sys.stderr)
        return 143 if name == "SIGTERM" else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    argv = [a for a in sys.argv[1:] if a != "--debug"]
    sys.exit(run((["--debug"] if debug else []) + argv))
