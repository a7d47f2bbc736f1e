"""What the CLI's job commands do: run a recast, train a teacher, evaluate."""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from recast.datasets import BatchLoader, Data, load_data
from recast.checkpoint import rng_state, set_rng_state
from recast.engine import RecastConfig
from recast.errors import RecastError
from recast.pipeline import PRESETS, recast
from recast.plan import make_plan
from recast.walker import walk
from recast.progress import Progress
from recast.serialize import load_student
from recast.files import atomic_save_weights, atomic_write_text
from recast.teacher import TEACHER_PRESETS, load_teacher, train_teacher
from recast.training import evaluate, pick_device


def _data(args: argparse.Namespace) -> Data:
    dataset = args.dataset if args.dataset != "imagenet" else None
    return load_data(dataset, args.data_dir, args.limit_train, args.limit_test)


def _teacher_model(args: argparse.Namespace, data: Data) -> torch.nn.Module:
    """The teacher built to fit the data's classes, channels and image size."""
    from recast.cli import build_teacher

    return build_teacher(args, data.num_classes, data.in_channels, data.image_size)


def _loaders(data: Data, batch_size: int, seed: int) -> tuple[BatchLoader, BatchLoader]:
    return (BatchLoader(data.train, data.mean, data.std, batch_size, train=True, seed=seed),
            BatchLoader(data.test, data.mean, data.std, 256, train=False))


# what a recast run writes into its folder: --force removes these and nothing else
RUN_ARGS = "run-args.json"
RUN_FILES = (RUN_ARGS, "teacher.safetensors", "teacher-state.json", "student.safetensors",
             "student.json", "report.json", "report.md", "config.json")
RUN_FOLDERS = ("checkpoint", "plots", "tensorboard")


def _prepare_out(path: Path, resume: bool = False, force: bool = False,
                 keep: Path | None = None) -> Path:
    """A folder for a new run, or the run to resume; never overwrites silently.

    --force clears only a folder that holds a recast run, and only the run's
    own files; ``keep`` (the --teacher file, if it lives there) stays.
    """
    if path.exists() and not path.is_dir():
        raise RecastError(f"--out {path} is a file, not a folder; choose a new folder name")
    holds_files = path.exists() and any(path.iterdir())
    if resume:
        if not (path / RUN_ARGS).is_file():
            raise RecastError(f"--resume: {path} holds no recast run to resume; drop --resume "
                              f"or give the folder of an interrupted run")
        if (path / "report.json").is_file():
            raise RecastError(f"--resume: the run in {path} has already finished "
                              f"(report.md is there); nothing to resume")
        return path
    if holds_files and force:
        if not any((path / marker).exists() for marker in (RUN_ARGS, "report.json",
                                                            "student.json")):
            raise RecastError(f"--force: {path} does not hold a recast run, so nothing there "
                              f"is replaced; choose a new folder")
        for name in RUN_FILES:
            if keep is None or (path / name).resolve() != keep.resolve():
                (path / name).unlink(missing_ok=True)
        for folder in RUN_FOLDERS:
            shutil.rmtree(path / folder, ignore_errors=True)
    elif holds_files:
        raise RecastError(f"--out {path} already holds files; add --resume to continue the "
                          f"run there, --force to start it over (replaces its run files), or "
                          f"choose a new folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RecastError(f"--out {path} is not writable ({exc.strerror}); choose another "
                          f"folder") from exc
    return path


def _saved_args(args: argparse.Namespace, out: Path) -> argparse.Namespace:
    """On --resume the run's own settings win; only how it is shown may change."""
    try:
        saved = json.loads((out / RUN_ARGS).read_text())
        for name in ("quiet", "debug", "device", "resume", "force"):
            saved[name] = getattr(args, name, None)
        saved["widths_parsed"]  # written by every run that can be resumed
    except (ValueError, KeyError, TypeError) as exc:
        raise RecastError(f"--resume: {out / RUN_ARGS} is damaged ({exc}); start again with "
                          f"--force") from exc
    return argparse.Namespace(**saved, func=args.func)


def _write_args(args: argparse.Namespace, out: Path) -> None:
    settings = {k: v for k, v in vars(args).items()
                if k not in ("func", "resume", "force", "debug")}
    atomic_write_text(out / RUN_ARGS, json.dumps(settings, indent=2))


def recast_config(args: argparse.Namespace) -> RecastConfig:
    """The run's settings: the preset, then explicit flags. A resumed run keeps the
    settings it started with, even if the preset has changed since."""
    if getattr(args, "resolved_config", None):
        return RecastConfig(**args.resolved_config)
    settings = dict(PRESETS[args.preset])
    if args.epochs_per_block is not None or args.finetune_epochs is not None:
        settings.pop("budget_epochs", None)  # explicit epochs replace the preset's budget
    for name in ("epochs_per_block", "finetune_epochs", "lr", "batch_size", "optimizer",
                 "scheduler", "init", "block_training", "finetune_loss",
                 "finetune_optimizer", "finetune_lr", "budget_epochs", "block_fraction"):
        value = getattr(args, name)
        if value is not None:
            settings[name] = value
    settings["freeze_prefix"] = args.freeze_prefix
    settings["seed"] = args.seed
    return RecastConfig(**settings)


def run_recast(args: argparse.Namespace, widths) -> None:
    resume = getattr(args, "resume", False)
    if resume and not args.out:
        raise RecastError("--resume needs --out DIR: the folder of the run to continue")
    if resume:
        out = _prepare_out(Path(args.out), resume=True)
        args = _saved_args(args, out)
        widths = args.widths_parsed
    name = args.model or Path(args.model_file.split(":")[0]).stem
    out = Path(args.out or f"runs/{name}-{args.target}-{time.strftime('%Y%m%d-%H%M%S')}")
    progress = Progress(quiet=args.quiet)
    if resume:
        progress.log(f"resuming the run in {out} with its saved settings")
    torch.manual_seed(args.seed)
    data = _data(args)
    teacher = _teacher_model(args, data)
    config = recast_config(args)
    shape = (1, data.in_channels, data.image_size, data.image_size)
    make_plan(walk(teacher, shape), args.target, widths)  # a bad plan fails before training
    if args.teacher:
        load_teacher(teacher, args.teacher)
    if not resume:
        out = _prepare_out(out, force=getattr(args, "force", False),
                           keep=Path(args.teacher) if args.teacher else None)
        args.widths_parsed = widths
        if args.method == "recast":
            args.resolved_config = config.to_json()
            _write_args(args, out)
    train_loader, test_loader = _loaders(data, config.batch_size, args.seed)
    device = pick_device(args.device)
    progress.watch(out / "tensorboard")  # live events, when tensorboard is installed
    teacher_info: dict = {"source": args.teacher}
    teacher_accuracy = None
    teacher_state = out / "teacher-state.json"
    if args.teacher:
        teacher_info = {"source": args.teacher}  # loaded above
    elif resume and teacher_state.is_file():
        load_teacher(teacher, out / "teacher.safetensors")
        saved = json.loads(teacher_state.read_text())
        teacher_info, teacher_accuracy = saved["info"], saved["info"]["accuracy"]
        set_rng_state(saved["rng"], train_loader.generator)
        progress.log(f"teacher: the one this run trained ({teacher_accuracy}%)")
    else:
        epochs, lr = TEACHER_PRESETS[args.preset]
        epochs = args.teacher_epochs if args.teacher_epochs is not None else epochs
        progress.log(f"no --teacher given: training {name} for {epochs} epochs first "
                     f"(kept as {out / 'teacher.safetensors'})")
        result = train_teacher(teacher, train_loader, test_loader, epochs,
                               args.teacher_lr or lr, device, progress)
        atomic_save_weights(teacher, out / "teacher.safetensors")
        teacher_info = {"source": "trained", "epochs": epochs, "lr": args.teacher_lr or lr,
                        "seconds": round(result["seconds"], 1),
                        "accuracy": round(result["accuracy"], 2)}
        teacher_accuracy = result["accuracy"]
        # where the data order and RNG stood: a resumed run continues from here
        atomic_write_text(teacher_state, json.dumps(
            {"info": teacher_info, "rng": rng_state(train_loader.generator)}))
    teacher.cpu().eval()
    if teacher_accuracy is None:
        teacher_accuracy = evaluate(teacher, test_loader, torch.device("cpu"))
    progress.log(f"teacher accuracy {teacher_accuracy:.2f}% on {len(data.test)} test images")
    if args.method != "recast":
        if resume:
            raise RecastError("--resume continues recast runs; a --method baseline starts "
                              "again with --force")
        _run_baseline(args, teacher, teacher_accuracy, widths, config, data, out,
                      (train_loader, test_loader), device, progress, name)
        progress.close()
        return
    result = recast(teacher, args.target, widths, train_loader=train_loader,
                    test_loader=test_loader,
                    input_shape=(1, data.in_channels, data.image_size, data.image_size),
                    config=config, device=args.device, progress=progress,
                    teacher_accuracy=teacher_accuracy, checkpoints=out / "checkpoint")
    result.report["model"] = name
    result.report["num_classes"] = data.num_classes
    result.report["data"] = {"source": data.source, "train": len(data.train),
                             "test": len(data.test)}
    result.report["teacher"]["training"] = teacher_info
    result.extra = {"argv": vars(args) | {"func": None}, "preset": args.preset,
                    "target": args.target, "widths": widths, "teacher": teacher_info,
                    "data": result.report["data"], "normalisation": {
                        "mean": data.mean, "std": data.std}}
    progress.close()
    result.save(out)
    # the student is saved now: what only a resume needed goes
    shutil.rmtree(out / "checkpoint", ignore_errors=True)
    (out / "teacher-state.json").unlink(missing_ok=True)
    report = result.report
    print(f"teacher {report['teacher']['accuracy']}% -> student "
          f"{report['student']['accuracy']}% | params {report['ratio']['params']}x fewer, "
          f"mults {report['ratio']['mults']}x fewer | {out}/report.md")


def _run_baseline(args, teacher, teacher_accuracy, widths, config, data, out, loaders,
                  device, progress, name) -> None:
    """--method kd|kd-mse|scratch: the recast plan's student, same budget in images."""
    from recast.baselines import fresh_student, train_student
    from recast.pipeline import RecastResult
    from recast.report import compression_report

    shape = (1, data.in_channels, data.image_size, data.image_size)
    plan = make_plan(walk(teacher, shape), args.target, widths)
    budget = (args.budget if args.budget is not None else
              config.budget_epochs if config.budget_epochs is not None else
              config.epochs_per_block * len(plan.recast_steps()) + config.finetune_epochs)
    progress.log(f"--method {args.method}: training the planned student for {budget} epochs")
    result = train_student(args.method, fresh_student(plan), teacher, *loaders, budget,
                           device, progress, lr=args.lr or 0.05, curve=[])
    student = result["student"].cpu().eval()
    report = compression_report(plan, student)
    report.update({"model": name, "method": args.method, "budget_epochs": budget,
                   "images_seen": result["images"], "recast_seconds": round(result["seconds"], 1),
                   "device": str(device), "num_classes": data.num_classes,
                   "accuracy_drop": round(teacher_accuracy - result["accuracy"], 2)})
    report["teacher"]["accuracy"] = round(teacher_accuracy, 2)
    report["student"]["accuracy"] = round(result["accuracy"], 2)
    RecastResult(student, plan, report, config, extra={
        "argv": vars(args) | {"func": None}, "method": args.method, "budget_epochs": budget,
        "normalisation": {"mean": data.mean, "std": data.std}}).save(out)
    print(f"{args.method}: teacher {report['teacher']['accuracy']}% -> student "
          f"{report['student']['accuracy']}% | {out}/report.md")


def run_train(args: argparse.Namespace) -> None:
    progress = Progress(quiet=args.quiet)
    torch.manual_seed(args.seed)
    data = _data(args)
    model = _teacher_model(args, data)
    out = Path(args.out or f"{args.model or 'model'}-teacher.safetensors")
    if out.exists():
        raise RecastError(f"--out {out} exists; choose a new file name")
    try:  # find out now, not after the training, that the file cannot be written
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_name(out.name + ".tmp").write_bytes(b"")
        out.with_name(out.name + ".tmp").unlink()
    except OSError as exc:
        raise RecastError(f"--out {out} cannot be written ({exc.strerror}); choose another "
                          f"path") from exc
    train_loader, test_loader = _loaders(data, args.batch_size, args.seed)
    epochs, lr = TEACHER_PRESETS["fast"]
    result = train_teacher(model, train_loader, test_loader, args.epochs or epochs,
                           args.lr or lr, pick_device(args.device), progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_weights(model, out)
    print(json.dumps({"out": str(out), "accuracy": round(result["accuracy"], 2),
                      "seconds": round(result["seconds"], 1)}))


def run_eval(args: argparse.Namespace) -> None:
    student = load_student(args.run_dir)
    saved = json.loads((Path(args.run_dir) / "config.json").read_text()) \
        if (Path(args.run_dir) / "config.json").is_file() else {}
    data = load_data(args.dataset, args.data_dir, None, args.limit_test)
    norm = saved.get("normalisation", {})
    mean, std = tuple(norm.get("mean", data.mean)), tuple(norm.get("std", data.std))
    loader = BatchLoader(data.test, mean, std, 256, train=False)
    try:
        accuracy = evaluate(student, loader, torch.device("cpu"))
    except RuntimeError as exc:
        raise RecastError(f"the saved student does not fit this data "
                          f"({str(exc).splitlines()[0][:120]}); use the data it was "
                          f"trained on") from exc
    print(json.dumps({"run": str(args.run_dir), "accuracy": round(accuracy, 2),
                      "test_images": len(data.test)}))
