"""Born-again generations (Furlanello et al., "Born-Again Neural Networks", 2018).

``generations=N``: generation 1 is the ordinary recast of the teacher.
Generation g+1 takes generation g's finished student as its teacher and recasts
it with the same plan: every recast block maps onto a fresh target of the same
spec (width ratio 1 against the student), kept parts stay as the student has
them, so every generation's student has the same architecture.

With a folder to keep them in, each finished generation leaves its student,
report.json and generation.json (written last: the generation is finished) in
``FOLDER/G/``; a resumed run reuses those and goes on with the next generation,
whose own checkpoints live in ``CHECKPOINTS/generation-G/``.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from recast import distributed
from recast.errors import RecastError
from recast.files import atomic_write_text
from recast.plan import Plan
from recast.progress import Progress
from recast.result import RecastResult
from recast.serialize import read_student
from recast.settings import RecastConfig
from recast.training import evaluate
from recast.walker import walk

FINISHED = "generation.json"  # written last into a generation's folder


def check_generations(generations: Any) -> int:
    """``generations`` as a count of at least 1, or a one-line error."""
    if isinstance(generations, bool) or not isinstance(generations, int) or generations < 1:
        raise RecastError(f"generations {generations!r} must be a whole number of at least 1 "
                          f"(1: the recast alone, 2: one born-again generation after it)")
    return generations


def checkpoint_folder(checkpoints: str | Path | None, generation: int) -> Path | None:
    """Where generation ``generation`` checkpoints: generation 1 where a single run does."""
    if checkpoints is None or generation == 1:
        return None if checkpoints is None else Path(checkpoints)
    return Path(checkpoints) / f"generation-{generation}"


def next_plan(plan: Plan, student: nn.Sequential, leaf_modules: Sequence[str] = ()) -> Plan:
    """``plan`` again, with ``student`` (the plan's finished student) as the teacher.

    Recast steps keep their target specs; kept steps keep the student's own part
    (so its layers keep their names) and rebuild nothing, as the widths match.
    """
    chain = walk(student.cpu().eval(), plan.chain.input_shape, leaf_modules=leaf_modules)
    pairs = list(zip(plan.steps, chain.blocks))
    if len(chain.blocks) != len(plan.steps) or any(
            (s.in_channels, s.out_channels) != (b.in_channels, b.out_channels)
            for s, b in pairs):
        raise RecastError(f"the student walks into {len(chain.blocks)} blocks that do not "
                          f"match its plan's {len(plan.steps)}, so it cannot teach a next "
                          f"generation; run with --generations 1")
    chain.model_name = plan.chain.model_name
    steps = []
    for step, block in pairs:
        if not step.recast:  # kept: as the student has it (a rebuilt one as a graph)
            own = student[block.index]
            if isinstance(own, fx.GraphModule):
                block = replace(block, module=own)
            step = replace(step, spec=None)
        steps.append(replace(step, block=block))
    chain.blocks = [step.block for step in steps]  # the engine reads the chain's blocks
    size = plan.size.get("student", {})
    return Plan(chain, plan.target, steps, {"teacher": dict(size), "student": dict(size)})


def run_generations(plan: Plan, teacher_accuracy: float, count: int,
                    recast_one: Callable[[int, Plan, float], Any], *, seed: int,
                    train_loader, test_loader, progress: Progress,
                    keep: str | Path | None = None, leaf_modules: Sequence[str] = ()) -> Any:
    """``count`` generations; ``recast_one(generation, plan, teacher_accuracy)`` runs
    one and returns its RecastResult. Returns the last generation's student with a
    report over all of them (see :func:`combined_report`)."""
    results: list[Any] = []
    entries: list[dict[str, Any]] = []
    for generation in range(1, count + 1):
        who = "the teacher" if generation == 1 else f"student of generation {generation - 1}"
        if generation > 1:
            plan = next_plan(plan, results[-1].student, leaf_modules)
        folder = Path(keep) / str(generation) if keep is not None else None
        if folder is not None and (folder / FINISHED).is_file():
            result, entry = _load(folder, plan)
            progress.log(f"generation {generation}/{count}: teacher = {who} "
                         f"({entry['teacher_accuracy']:.1f}%); finished before the resume, "
                         f"{entry['accuracy']:.1f}%")
        else:
            if generation > 1:  # measured: the teacher is the student just walked
                teacher_accuracy = evaluate(plan.chain.as_module(), test_loader,
                                            torch.device("cpu"))
            progress.log(f"generation {generation}/{count}: teacher = {who} "
                         f"({teacher_accuracy:.1f}%)")
            if generation > 1:  # a resumed run starts the generation as a whole run does
                _reseed(seed + generation - 1, train_loader)
            result = recast_one(generation, plan, teacher_accuracy)
            report = result.report
            report["generation"] = generation
            entry = {"generation": generation, "accuracy": report["student"]["accuracy"],
                     "teacher_accuracy": report["teacher"]["accuracy"],
                     "recast_seconds": report["recast_seconds"],
                     "images_seen": report["images_seen"]}
            if folder is not None and distributed.is_main():
                _keep(result, entry, folder)
        results.append(result)
        entries.append(entry)
    last = results[-1]
    last.report = combined_report([r.report for r in results], entries)
    return last


def combined_report(reports: list[dict[str, Any]],
                    entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's report: generation 1's against the teacher (blocks, steps, fine-tune)
    with the last generation's student, every generation's accuracy, the total wall
    time and images, and one accuracy curve through all generations."""
    first, last = reports[0], reports[-1]
    report = dict(first)
    report.pop("generation", None)
    report["student"] = dict(last["student"])
    report["accuracy_drop"] = round(first["teacher"]["accuracy"]
                                    - last["student"]["accuracy"], 2)
    teacher_ms = first["teacher"].get("latency_ms", {}).get("batch1")
    student_ms = last["student"].get("latency_ms", {}).get("batch1")
    if teacher_ms and student_ms:
        report["ratio"] = dict(first["ratio"], latency_batch1=round(teacher_ms / student_ms, 3))
    report["recast_seconds"] = round(sum(e["recast_seconds"] for e in entries), 1)
    report["images_seen"] = sum(e["images_seen"] for e in entries)
    report["resumed"] = any(r.get("resumed") for r in reports) or any(
        e.get("reused") for e in entries)
    curve, offset = [], 0
    for generation, part in enumerate(reports, 1):
        curve += [dict(point, images=point["images"] + offset,
                       phase=f"generation {generation}: {point['phase']}")
                  for point in part.get("curve", [])]
        offset += part.get("images_seen", 0)
    report["curve"] = curve
    report["generations"] = [{k: v for k, v in e.items() if k != "reused"} for e in entries]
    return report


def _reseed(seed: int, train_loader) -> None:
    torch.manual_seed(seed)
    generator = getattr(train_loader, "generator", None)
    if isinstance(generator, torch.Generator):
        generator.manual_seed(seed)


def _keep(result: RecastResult, entry: dict[str, Any], folder: Path) -> None:
    """A finished generation into ``folder`` as any run saves (student, report,
    config), then generation.json: the mark that it finished."""
    result.save(folder)
    atomic_write_text(folder / FINISHED, json.dumps(entry, indent=2))


def _load(folder: Path, plan: Plan) -> tuple[Any, dict[str, Any]]:
    """A generation a previous attempt finished, as its RecastResult and entry."""
    try:
        saved = json.loads((folder / FINISHED).read_text())
        report = json.loads((folder / "report.json").read_text())
        config = RecastConfig(**json.loads((folder / "config.json").read_text())["recast"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RecastError(f"the finished generation in {folder} is damaged ({exc}); start "
                          f"again with --force") from exc
    student = read_student(folder)[0]
    return RecastResult(student, plan, report, config), dict(saved, reused=True)
