"""What the CLI's job commands do: run a recast, train a teacher, evaluate."""

import argparse
import json
import time
from pathlib import Path

import torch

from recast.datasets import BatchLoader, Data, load_data
from recast.engine import RecastConfig
from recast.errors import RecastError
from recast.pipeline import PRESETS, recast
from recast.progress import Progress
from recast.serialize import load_student
from recast.files import atomic_save_weights
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


def _prepare_out(path: Path) -> Path:
    if path.exists() and any(path.iterdir()):
        raise RecastError(f"--out {path} already holds files; choose a new folder so "
                          f"nothing is overwritten")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RecastError(f"--out {path} is not writable ({exc.strerror}); choose another "
                          f"folder") from exc
    return path


def recast_config(args: argparse.Namespace) -> RecastConfig:
    settings = dict(PRESETS[args.preset])
    for name in ("epochs_per_block", "finetune_epochs", "lr", "batch_size", "optimizer",
                 "scheduler", "init", "block_training", "finetune_loss",
                 "finetune_optimizer", "finetune_lr"):
        value = getattr(args, name)
        if value is not None:
            settings[name] = value
    settings["freeze_prefix"] = args.freeze_prefix
    settings["seed"] = args.seed
    return RecastConfig(**settings)


def run_recast(args: argparse.Namespace, widths) -> None:
    progress = Progress(quiet=args.quiet)
    torch.manual_seed(args.seed)
    data = _data(args)
    name = args.model or Path(args.model_file.split(":")[0]).stem
    out = Path(args.out or f"runs/{name}-{args.target}-{time.strftime('%Y%m%d-%H%M%S')}")
    out = _prepare_out(out)
    teacher = _teacher_model(args, data)
    config = recast_config(args)
    train_loader, test_loader = _loaders(data, config.batch_size, args.seed)
    device = pick_device(args.device)
    teacher_info: dict = {"source": args.teacher}
    teacher_accuracy = None
    if args.teacher:
        load_teacher(teacher, args.teacher)
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
    teacher.cpu().eval()
    if teacher_accuracy is None:
        teacher_accuracy = evaluate(teacher, test_loader, torch.device("cpu"))
    progress.log(f"teacher accuracy {teacher_accuracy:.2f}% on {len(data.test)} test images")
    if args.method != "recast":
        _run_baseline(args, teacher, teacher_accuracy, widths, config, data, out,
                      (train_loader, test_loader), device, progress, name)
        return
    result = recast(teacher, args.target, widths, train_loader=train_loader,
                    test_loader=test_loader,
                    input_shape=(1, data.in_channels, data.image_size, data.image_size),
                    config=config, device=args.device, progress=progress,
                    teacher_accuracy=teacher_accuracy)
    result.report["model"] = name
    result.report["num_classes"] = data.num_classes
    result.report["data"] = {"source": data.source, "train": len(data.train),
                             "test": len(data.test)}
    result.report["teacher"]["training"] = teacher_info
    result.extra = {"argv": vars(args) | {"func": None}, "preset": args.preset,
                    "target": args.target, "widths": widths, "teacher": teacher_info,
                    "data": result.report["data"], "normalisation": {
                        "mean": data.mean, "std": data.std}}
    result.save(out)
    report = result.report
    print(f"teacher {report['teacher']['accuracy']}% -> student "
          f"{report['student']['accuracy']}% | params {report['ratio']['params']}x fewer, "
          f"mults {report['ratio']['mults']}x fewer | {out}/report.md")


def _run_baseline(args, teacher, teacher_accuracy, widths, config, data, out, loaders,
                  device, progress, name) -> None:
    """--method kd|kd-mse|scratch: the recast plan's student, same budget in images."""
    from recast.baselines import fresh_student, train_student
    from recast.pipeline import RecastResult
    from recast.plan import make_plan
    from recast.report import compression_report
    from recast.walker import walk

    shape = (1, data.in_channels, data.image_size, data.image_size)
    plan = make_plan(walk(teacher, shape), args.target, widths)
    budget = (args.budget if args.budget is not None else
              config.epochs_per_block * len(plan.recast_steps()) + config.finetune_epochs)
    progress.log(f"--method {args.method}: training the planned student for {budget} epochs")
    result = train_student(args.method, fresh_student(plan), teacher, *loaders, budget,
                           device, progress, lr=args.lr or 0.05)
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
