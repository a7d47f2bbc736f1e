"""What the CLI's job commands do: run a recast (or a baseline), train a teacher,
evaluate a saved student. Each takes typed settings, never argparse.
"""

import json
import shutil
import time
from pathlib import Path

import torch

from recast import distributed
from recast.baselines import fresh_student, teacher_chain, train_student
from recast.checkpoint import rng_state, set_rng_state
from recast.datafree import save_synthetic, synthetic_train_set
from recast.datasets import BatchLoader, Data, load_job_data
from recast.errors import RecastError, Stopped
from recast.files import atomic_save_weights, atomic_write_text
from recast.hints import check_hints
from recast.labels import AGREEMENT, finish_labels, settle_labels
from recast.pipeline import RecastResult, recast
from recast.plan import Plan, make_plan
from recast.progress import Progress
from recast.run_report import trained_report
from recast.runfolder import TEACHER_CHECKPOINTS, TRAINED_TEACHER, prepare_new, save_spec
from recast.runspec import RunSpec
from recast.serialize import check_savable
from recast.teacher_checkpoint import TeacherCheckpoints
from recast.teacher import TEACHER_PRESETS, build_teacher, load_state, \
    load_teacher, train_teacher
from recast.training import evaluate, pick_device
from recast.walker import walk


def _loaders(data: Data, batch_size: int, seed: int) -> tuple[BatchLoader, BatchLoader]:
    return (BatchLoader(data.train, data.mean, data.std, batch_size, train=True, seed=seed),
            BatchLoader(data.test, data.mean, data.std, 256, train=False))


def _plan(teacher: torch.nn.Module, data: Data, spec: RunSpec, progress: Progress) -> Plan:
    shape = (1, data.in_channels, data.image_size, data.image_size)
    chain = walk(teacher, shape, leaf_modules=spec.model.leaf_modules)
    for note in chain.notes:
        progress.log(f"recast: note: {note}")
    plan = make_plan(chain, spec.target, spec.widths, **spec.plan)
    check_savable(_taken_as_they_are(plan))  # refused now, not after the training
    check_hints(plan, spec.method, spec.config.loss_to_check, progress)
    return plan


def _taken_as_they_are(plan: Plan) -> list[torch.nn.Module]:
    """The teacher's modules the student keeps as they are: its file must store them."""
    kept = [plan.build_block(i) for i, step in enumerate(plan.steps) if step.spec is None]
    return kept + [step.block.tail for step in plan.steps
                   if step.spec is not None and step.block.tail is not None]


def run_recast(spec: RunSpec, resume: bool = False, force: bool = False) -> None:
    """The recast job (or a --method baseline) into its run folder."""
    out = Path(spec.out or f"runs/{spec.model.label}-{spec.target}-"
               f"{time.strftime('%Y%m%d-%H%M%S')}")
    distributed.start()  # under torchrun: join the other processes
    progress = Progress(quiet=spec.quiet)
    if resume:
        progress.log(f"resuming the run in {out} with its saved settings")
    torch.manual_seed(spec.seed)
    data = load_job_data(spec.model.dataset, spec.data_dir, spec.limit_train, spec.limit_test,
                         progress)
    state = load_state(spec.teacher) if spec.teacher else None  # the file is read once
    settle_labels(spec, data, progress, state)  # without labels: the teacher's class count
    teacher = build_teacher(spec.model, data.num_classes, data.in_channels, data.image_size)
    plan = _plan(teacher, data, spec, progress)  # a bad plan fails before any training
    synthetic = synthetic_train_set(spec, data, out if resume else None, progress, state) \
        if spec.synthetic_images else None
    if spec.teacher:
        load_teacher(teacher, spec.teacher, state)
        finish_labels(teacher, data, progress)
    del state  # the model holds the weights now: no second copy through the training
    if not resume:
        distributed.on_main(lambda: _open(out, spec, force, synthetic))
    try:
        _run_in(out, spec, data, teacher, plan, progress, resume)
    except KeyboardInterrupt as stop:
        then = f"continue it with: recast --resume {out}" if spec.method == "recast" else None
        raise Stopped.saying(stop, then) from None


def _open(out: Path, spec: RunSpec, force: bool, synthetic: dict | None) -> None:
    """A new run folder with the run's spec (rank 0 only)."""
    prepare_new(out, force, keep=Path(spec.teacher) if spec.teacher else None)
    if spec.method == "recast":
        save_spec(spec, out)
    if synthetic is not None:
        save_synthetic(synthetic, out)


def _run_in(out: Path, spec: RunSpec, data: Data, teacher: torch.nn.Module, plan: Plan,
            progress: Progress, resume: bool) -> None:
    # --batch-size is per process: the loaders deal the global batch, each takes its share
    train_loader, test_loader = _loaders(data, spec.config.batch_size * distributed.size(),
                                         spec.seed)
    device = pick_device(spec.device)
    progress.watch(out / "tensorboard")  # live events, when tensorboard is installed
    info, accuracy = _teacher_in_run(out, spec, teacher, train_loader, test_loader, device,
                                     progress, resume)
    teacher.cpu().eval()
    if accuracy is None:
        accuracy = evaluate(teacher, test_loader, torch.device("cpu"))
    progress.log(f"teacher accuracy {accuracy:.2f}% on {len(data.test)} test images")
    if spec.method != "recast":
        if resume:
            raise RecastError("--resume continues recast runs; a --method baseline starts "
                              "again with --force")
        run_baseline(spec, plan, accuracy, data, out, (train_loader, test_loader),
                     device, progress)
        progress.close()
        return
    result = recast(teacher, spec.target, spec.widths, train_loader=train_loader,
                    test_loader=test_loader, input_shape=plan.chain.input_shape,
                    config=spec.config, device=spec.device, progress=progress,
                    teacher_accuracy=accuracy, checkpoints=out / "checkpoint",
                    leaf_modules=spec.model.leaf_modules, plan_options=spec.plan,
                    generations=spec.generations, generations_dir=out / "generations",
                    plan=plan)
    _describe(result, spec, data, info)
    if (out / "synthetic.json").is_file():  # --data synthetic: what the transfer set cost
        result.report["synthetic"] = json.loads((out / "synthetic.json").read_text())
    progress.close()
    if not distributed.is_main():
        return
    result.save(out)
    # the student is saved now: what only a resume needed goes
    shutil.rmtree(out / "checkpoint", ignore_errors=True)
    shutil.rmtree(out / TEACHER_CHECKPOINTS, ignore_errors=True)  # if a kill left it
    (out / "teacher-state.json").unlink(missing_ok=True)
    report = result.report
    print(f"teacher {report['teacher']['accuracy']}% -> student "
          f"{report['student']['accuracy']}% | params {report['ratio']['params']}x fewer, "
          f"mults {report['ratio']['mults']}x fewer | {out}/report.md")


def _teacher_in_run(out: Path, spec: RunSpec, teacher: torch.nn.Module, train_loader,
                    test_loader, device: torch.device, progress: Progress,
                    resume: bool) -> tuple[dict, float | None]:
    """The given teacher, the one this run trained before a resume, or a new one."""
    state = out / "teacher-state.json"
    if spec.teacher:
        return {"source": spec.teacher}, None  # loaded before the folder was made
    if resume and state.is_file():
        load_teacher(teacher, out / TRAINED_TEACHER)
        saved = json.loads(state.read_text())
        set_rng_state(saved["rng"], train_loader.generator)
        progress.log(f"teacher: the one this run trained ({saved['info']['accuracy']}%)")
        return saved["info"], saved["info"]["accuracy"]
    epochs, lr = TEACHER_PRESETS[spec.preset]
    epochs = spec.teacher_epochs if spec.teacher_epochs is not None else epochs
    lr = spec.teacher_lr or lr
    progress.log(f"no --teacher given: training {spec.model.label} for {epochs} epochs first "
                 f"(kept as {out / TRAINED_TEACHER})")
    checkpoints = TeacherCheckpoints(out / TEACHER_CHECKPOINTS)  # a resume continues from it
    position = checkpoints.restore(teacher, train_loader, progress) if resume else None
    result = train_teacher(teacher, train_loader, test_loader, epochs, lr, device, progress,
                           checkpoint=checkpoints.saver(teacher, train_loader),
                           resume=position)
    info = {"source": "trained", "epochs": epochs, "lr": lr,
            "seconds": round(result["seconds"], 1), "accuracy": round(result["accuracy"], 2)}
    if distributed.is_main():
        atomic_save_weights(teacher, out / TRAINED_TEACHER)
        # where the data order and RNG stood: a resumed run continues from here
        atomic_write_text(state, json.dumps({"info": info,
                                             "rng": rng_state(train_loader.generator)}))
        checkpoints.remove()
    return info, result["accuracy"]


def _describe(result: RecastResult, spec: RunSpec, data: Data, teacher_info: dict) -> None:
    """What the report and config.json say about the run beyond the recast itself."""
    report = result.report
    report["model"] = spec.model.label
    report["num_classes"] = data.num_classes
    report["data"] = _data_record(spec, data)
    _label_record(report, spec, data)
    report["teacher"]["training"] = teacher_info
    report["world_size"] = distributed.size()
    report["global_batch"] = spec.config.batch_size * distributed.size()
    result.extra = {"world_size": distributed.size(), "global_batch": report["global_batch"],
                    "run": spec.to_json(), "preset": spec.preset, "target": spec.target,
                    "widths": spec.widths, "teacher": teacher_info, "data": report["data"],
                    "normalisation": {"mean": data.mean, "std": data.std}}


def _label_record(report: dict, spec: RunSpec, data: Data) -> None:
    """Whether the run read labels, and what its test accuracy measures."""
    report["labels"] = spec.config.labels
    if data.test_truth == "teacher":
        report["accuracy_is"] = AGREEMENT


def _data_record(spec: RunSpec, data: Data) -> dict:
    """Which data the run used, precisely enough for `recast eval` to find it again."""
    data_dir = str(Path(spec.data_dir).resolve()) if spec.data_dir else None
    return {"source": data.source, "train": len(data.train), "test": len(data.test),
            "data_dir": data_dir, "dataset": spec.model.dataset, "limit_test": spec.limit_test}


def run_baseline(spec: RunSpec, plan: Plan, teacher_accuracy: float, data: Data, out: Path,
                 loaders, device, progress: Progress) -> None:
    """--method kd|kd-mse|scratch|hint: the recast plan's student, same budget in images."""
    budget = spec.budget if spec.budget is not None else \
        spec.config.total_epochs(len(plan.recast_steps()))
    progress.log(f"--method {spec.method}: training the planned student for {budget} epochs")
    result = train_student(spec.method, fresh_student(plan), teacher_chain(plan), *loaders,
                           budget, device, progress, curve=[], labels=spec.config.labels != "none",
                           lr=spec.config.lr if "lr" in spec.given else 0.05)
    student = result["student"].cpu().eval()
    if not distributed.is_main():
        return
    report = trained_report(plan, student, teacher_accuracy, result["accuracy"])
    report.update({"model": spec.model.label, "method": spec.method, "budget_epochs": budget,
                   "images_seen": result["images"], "recast_seconds": round(result["seconds"], 1),
                   "device": str(device), "num_classes": data.num_classes,
                   "data": _data_record(spec, data)})
    _label_record(report, spec, data)
    RecastResult(student, plan, report, spec.config, extra={
        "run": spec.to_json(), "method": spec.method, "budget_epochs": budget,
        "data": report["data"], "normalisation": {"mean": data.mean, "std": data.std}}).save(out)
    print(f"{spec.method}: teacher {report['teacher']['accuracy']}% -> student "
          f"{report['student']['accuracy']}% | {out}/report.md")
