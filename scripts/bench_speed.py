"""Where a recast spends its time: images/s of each kind of training step.

Times, on synthetic batches (speed does not depend on the weights):
- every sequential recast step, by block index (the authors' way: step i
  trains the student prefix up to the block that restores the width);
- the all-blocks-at-once pass (--block-training local);
- a distillation batch and a plain (scratch) batch of the finished student,
  the reference costs a recast is compared against;
- the same with channels_last tensors, and the teacher's forward under
  no_grad vs inference_mode;
- the teacher's forward alone and in a KD batch, in float32 and under bfloat16
  autocast (--teacher-precision), and the sequential steps with each.
Results merge into benchmarks/speed.json (one entry per model, thread count
and commit, so a change's before and after stand side by side) and
benchmarks/speed.md.

    python scripts/bench_speed.py --threads 1
"""

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recast.result import code_commit  # noqa: E402
from recast.engine import RecastConfig, Recaster  # noqa: E402
from recast.losses import hinton_kd  # noqa: E402
from recast.models import build_model  # noqa: E402
from recast.plan import make_plan  # noqa: E402
from recast.precision import TargetChain  # noqa: E402
from recast.progress import Progress  # noqa: E402
from recast.walker import walk  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--teacher-width", type=float, default=0.25)
    parser.add_argument("--target", default="conv")
    parser.add_argument("--width", type=float, default=0.4)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batches", type=int, default=12, help="timed batches per measurement")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "speed"))
    return parser.parse_args()


class SyntheticLoader:
    """``count`` fixed random CIFAR-shaped batches: a loader with no data cost."""

    def __init__(self, count: int, batch_size: int, memory_format=torch.contiguous_format):
        generator = torch.Generator().manual_seed(0)
        self.batches = [(torch.randn(batch_size, 3, 32, 32, generator=generator)
                         .contiguous(memory_format=memory_format),
                         torch.randint(0, 10, (batch_size,), generator=generator))
                        for _ in range(count)]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


def images_per_second(step: Callable[[Tensor, Tensor], None], loader: SyntheticLoader) -> float:
    x, y = loader.batches[0]
    step(x, y)  # warm-up: allocator and kernels
    started = time.perf_counter()
    for x, y in loader:
        step(x, y)
    return len(loader) * len(loader.batches[0][0]) / (time.perf_counter() - started)


def training_step(student: nn.Module, teacher: nn.Module | None, inference: bool = False):
    """One SGD batch of ``student``: Hinton KD when there is a teacher, else CE."""
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)

    def step(x: Tensor, y: Tensor) -> None:
        if teacher is None:
            loss = F.cross_entropy(student(x), y)
        else:
            with torch.inference_mode() if inference else torch.no_grad():
                expected = teacher(x)
            if inference:
                expected = expected.clone()
            loss = hinton_kd(student(x), expected, y, 4.0, 0.9)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def forward_only(model: nn.Module) -> Callable[[Tensor, Tensor], None]:
    """One forward without gradients: a teacher's target, or an evaluation batch."""
    def step(x: Tensor, y: Tensor) -> None:
        with torch.no_grad():
            model(x)
    return step


def recast_rates(plan, loader: SyntheticLoader, block_training: str,
                 precision: str = "float32") -> list[dict[str, Any]]:
    """images/s of each recast step (sequential) or of the single joint pass (local)."""
    config = RecastConfig(epochs_per_block=1.0, finetune_epochs=0.0, init="teacher",
                          block_training=block_training, teacher_precision=precision)
    test = SyntheticLoader(1, 16)
    recaster = Recaster(copy.deepcopy(plan), config, torch.device("cpu"), Progress(quiet=True))
    outcome = recaster.run(loader, test)
    steps = outcome.steps[:1] if block_training == "local" else outcome.steps
    return [{"block": s.index, "name": s.name, "last": s.loss_at,
             "images_per_s": round(s.images / s.seconds, 1)} for s in steps]


def through_every_step(steps: list[dict[str, Any]]) -> float:
    """images/s of one image pushed through every sequential step: the harmonic total."""
    return 1 / sum(1 / s["images_per_s"] for s in steps)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    teacher = build_model(args.model, width=args.teacher_width).eval().requires_grad_(False)
    plan = make_plan(walk(teacher, (1, 3, 32, 32)), args.target, args.width)
    loader = SyntheticLoader(args.batches, args.batch_size)
    last_format = SyntheticLoader(args.batches, args.batch_size, torch.channels_last)
    rows: dict[str, float] = {}
    for name, channels_last in (("", False), (" (channels_last)", True)):
        data = last_format if channels_last else loader
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        student = plan.build_student().train().to(memory_format=fmt)
        t = copy.deepcopy(teacher).to(memory_format=fmt)
        rows[f"scratch batch{name}"] = images_per_second(training_step(student, None), data)
        rows[f"KD batch{name}"] = images_per_second(training_step(student, t), data)
    student = plan.build_student().train()
    rows["KD batch, teacher under inference_mode"] = images_per_second(
        training_step(student, teacher, inference=True), loader)
    t = copy.deepcopy(teacher).to(memory_format=torch.channels_last)
    for precision in ("float32", "bfloat16"):
        chain = TargetChain(nn.Sequential(t), precision)
        rows[f"teacher forward alone, {precision} (channels_last)"] = images_per_second(
            forward_only(chain), last_format)
        student = plan.build_student().train().to(memory_format=torch.channels_last)
        rows[f"KD batch, teacher in {precision} (channels_last)"] = images_per_second(
            training_step(student, chain), last_format)
    rows["sequential, one image through every step, teacher in bfloat16"] = \
        through_every_step(recast_rates(plan, loader, "sequential", "bfloat16"))
    sequential = recast_rates(plan, loader, "sequential")
    local = recast_rates(plan, loader, "local")
    rows["all blocks at once (local), per image"] = local[0]["images_per_s"]
    rows["sequential, one image through every step"] = through_every_step(sequential)

    entry = {"model": args.model, "teacher_width": args.teacher_width, "target": args.target,
             "width": args.width, "threads": args.threads, "batch_size": args.batch_size,
             "batches": args.batches,
             "command": " ".join(["python", "scripts/bench_speed.py", *sys.argv[1:]]),
             "commit": _commit(), "machine": f"{platform.machine()}, torch {torch.__version__}",
             "images_per_s": {k: round(v, 1) for k, v in rows.items()},
             "sequential_steps": sequential}
    _write(entry, Path(args.out))
    print(json.dumps(entry, indent=1))


def _commit() -> str:
    return code_commit(short=True) or "unknown"


def _write(entry: dict, out: Path) -> None:
    path = out.with_suffix(".json")
    results = json.loads(path.read_text()) if path.is_file() else {"runs": []}
    key = ("model", "teacher_width", "target", "width", "threads", "commit")
    results["runs"] = [r for r in results["runs"]
                       if tuple(r[k] for k in key) != tuple(entry[k] for k in key)] + [entry]
    path.write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(markdown(results))


def markdown(results: dict) -> str:
    lines = ["# Training speed per kind of step (images/s, CPU)", "",
             "Synthetic 32x32 batches; higher is faster. A sequential recast pushes every "
             "image of its block budget through one step; 'one image through every step' "
             "is the harmonic total, comparable with the local pass, which trains all "
             "blocks on each image once. Each commit's rows are that code's: at e6ad37a "
             "run_batches fed channels_last images and weights; from the resume commits on, "
             "images only (weights kept as they are, so a reloaded student's logits are "
             "bit-identical). Read the 1-thread rows: 2-thread timings varied by about 20% "
             "between repeats here.", ""]
    for run in results["runs"]:
        lines += [f"## {run['model']} width {run['teacher_width']} -> {run['target']} "
                  f"at {run['width']}, {run['threads']} thread(s)", "",
                  f"- command: `{run['command']}`", f"- commit: {run['commit']}",
                  f"- machine: {run['machine']}; batch {run['batch_size']}, "
                  f"{run['batches']} timed batches", "", "| step | images/s |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in run["images_per_s"].items()]
        lines += ["", "Sequential steps by block index (the step trains the student "
                  "prefix up to 'last'):", "", "| block | name | last | images/s |",
                  "|---:|---|---:|---:|"]
        lines += [f"| {s['block']} | {s['name']} | {s['last']} | {s['images_per_s']} |"
                  for s in run["sequential_steps"]]
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
