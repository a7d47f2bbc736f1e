"""The whole job: walk the teacher, plan, recast block by block, fine-tune,
report. :func:`recast` is the Python API; the CLI adds data, teacher
training and the run folder around it.
"""

import json
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torchvision
from torch import nn

from recast.checkpoint import CheckpointStore
from recast.engine import RecastConfig, Recaster
from recast.files import atomic_write_text
from recast.plan import Plan, make_plan
from recast.plots import write_plots, write_tensorboard
from recast.progress import Progress
from recast.report import compression_report, human, report_markdown
from recast.serialize import save_student
from recast.training import evaluate, pick_device
from recast.walker import walk

PRESETS: dict[str, dict[str, Any]] = {
    # the authors' CIFAR schedule (METHOD.md): for GPU users
    "paper": dict(epochs_per_block=60, finetune_epochs=100, lr=1e-3, optimizer="adam",
                  scheduler="step", step_size=20, batch_size=64, init="random"),
    # our CPU-budget default, the winner of benchmarks/cifar10.md (variant
    # warm-ce-sgd-lr02): 18 epochs of images, a fifth on warm-started sequential
    # block steps (Adam 1e-3), the rest a fine-tune on labels (SGD 0.02, wd 5e-4).
    # The labels-only fine-tune came within 0.4 points of the Hinton-KD one (78.13
    # vs 78.50%, 3 seeds) at 0.59x its wall time (400.6 vs 682.3 s).
    "fast": dict(budget_epochs=18, block_fraction=0.2, lr=1e-3, optimizer="adam",
                 scheduler="cosine", batch_size=128, init="teacher", finetune_loss="ce",
                 finetune_optimizer="sgd", finetune_lr=0.02, finetune_weight_decay=5e-4),
    # seconds: for tests and the quick start
    "smoke": dict(epochs_per_block=0.1, finetune_epochs=0.25, lr=1e-3, optimizer="adam",
                  scheduler="cosine", batch_size=64, init="teacher"),
}


@dataclass
class RecastResult:
    """The trained student, its plan, and the report that tells the truth about it."""

    student: nn.Sequential
    plan: Plan
    report: dict[str, Any]
    config: RecastConfig
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | Path) -> Path:
        """student.safetensors/.json, report.json/.md, config.json into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_student(self.student.cpu(), [s.spec for s in self.plan.steps], folder,
                     {"input_shape": self.report["input_shape"],
                      "num_classes": self.report.get("num_classes")})
        self.report["plots"] = write_plots(self.report, folder)
        self.report["tensorboard"] = write_tensorboard(self.report, folder)
        self.report["tensorboard_live"] = any((folder / "tensorboard").glob("live*"))
        atomic_write_text(folder / "report.json", json.dumps(self.report, indent=2))
        atomic_write_text(folder / "report.md", run_markdown(self.report))
        config = {"recast": self.config.to_json(), **self.extra, "environment": environment()}
        atomic_write_text(folder / "config.json", json.dumps(config, indent=2))
        return folder


def recast(
    teacher: nn.Module,
    target: str = "conv",
    width: float | Sequence[float] = 1.0,
    *,
    train_loader,
    test_loader,
    input_shape: tuple[int, ...] | None = None,
    config: RecastConfig | None = None,
    device: str = "auto",
    progress: Progress | None = None,
    teacher_accuracy: float | None = None,
    checkpoints: str | Path | None = None,
) -> RecastResult:
    """Recast ``teacher`` into a student of ``target`` blocks at ``width``.

    The loaders yield (images, labels) batches; the teacher must already be
    trained. Returns the student and a report (accuracy, params, mults, MACs,
    latency, per-block MSE and accuracy). With ``checkpoints`` (a folder) the
    run checkpoints after every step and fine-tune pass, and continues from the
    latest checkpoint there if one exists.
    """
    config = config or RecastConfig()
    progress = progress or Progress(quiet=True)
    torch.manual_seed(config.seed)
    run_device = pick_device(device)
    if input_shape is None:
        images, _ = next(iter(test_loader))
        input_shape = (1, *images.shape[1:])
    started = time.perf_counter()
    teacher = teacher.cpu().eval()
    chain = walk(teacher, tuple(input_shape))
    plan = make_plan(chain, target, width)
    config = config.for_steps(1 if config.block_training == "local"
                              else len(plan.recast_steps()))
    if teacher_accuracy is None:
        teacher_accuracy = evaluate(teacher, test_loader, torch.device("cpu"))
    store = CheckpointStore(Path(checkpoints)) if checkpoints is not None else None
    resumed = store is not None and store.latest() is not None
    outcome = Recaster(plan, config, run_device, progress, store).run(train_loader, test_loader)
    student = outcome.student.cpu().eval()
    report = compression_report(plan, student)
    report["teacher"]["accuracy"] = round(teacher_accuracy, 2)
    report["student"]["accuracy"] = round(outcome.accuracy, 2)
    report["accuracy_drop"] = round(teacher_accuracy - outcome.accuracy, 2)
    for record in outcome.steps:
        entry = report["blocks"][record.index]
        entry["step"] = {"final_mse": round(record.final_mse, 5),
                         "accuracy_after": round(record.accuracy, 2),
                         "seconds": round(record.seconds, 1), "images": record.images,
                         "loss_at_block": record.loss_at, "warm_start": record.warm_start,
                         "joint_pass": record.together}
    report["finetune"] = {k: round(float(v), 4) for k, v in outcome.finetune.items()}
    report["images_seen"] = outcome.images
    report["curve"] = outcome.curve  # test accuracy vs training images seen
    report["block_training"] = config.block_training
    report["recast_seconds"] = round(time.perf_counter() - started, 1)
    report["resumed"] = resumed  # then recast_seconds counts only the resumed part
    report["device"] = str(run_device)
    return RecastResult(student, plan, report, config)


def run_markdown(report: dict[str, Any]) -> str:
    """report.md: accuracy first, then the compression tables and the steps."""
    t, s = report["teacher"], report["student"]
    lines = [
        f"# recast report: {report['model']} -> {report['target']}",
        "",
        "| | accuracy (%) | params | mults | MACs |",
        "|---|---:|---:|---:|---:|",
        f"| teacher | {t.get('accuracy', '-')} | {human(t['params'])} | {human(t['mults'])} "
        f"| {human(t['macs'])} |",
        f"| student | {s.get('accuracy', '-')} | {human(s['params'])} | {human(s['mults'])} "
        f"| {human(s['macs'])} |",
        "",
        f"Accuracy drop {report.get('accuracy_drop', '-')} points at "
        f"{report['ratio']['mults']}x fewer mults; recast wall time "
        f"{report.get('recast_seconds', '-')} s on {report.get('device', '-')}"
        f"{' (resumed: counts only the part after the resume)' if report.get('resumed') else ''}.",
        "",
        report_markdown(report),
        "## Recast steps",
        "",
        "| # | block | kind -> target | final MSE | test accuracy after (%) | wall time (s) "
        "| warm start |",
        "|---:|---|---|---:|---:|---:|---|",
    ]
    for block in report["blocks"]:
        step = block.get("step")
        if step:
            lines.append(f"| {block['index']} | {block['name']} | {block['kind']} -> "
                         f"{block['target']} | {step['final_mse']} | {step['accuracy_after']} "
                         f"| {step['seconds']} | {'yes' if step['warm_start'] else 'no'} |")
    if report.get("block_training") == "local":
        lines += ["", "All target blocks were trained in one joint pass (`--block-training "
                  "local`): accuracy, wall time and images are that pass's, shared by "
                  "every block."]
    ft = report.get("finetune", {})
    lines += ["", f"Fine-tune: final loss {ft.get('loss', '-')}, {ft.get('images', '-')} "
              f"images, {ft.get('seconds', '-')} s."]
    if report.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in report["plots"]]
    else:
        lines += ["", "(No plots: `pip install matplotlib` for PNGs in plots/.)"]
    if report.get("tensorboard"):
        live = ("`live*`: loss, learning rate, images/s and test accuracy as the run went; "
                if report.get("tensorboard_live") else "")
        lines += ["", f"TensorBoard: `tensorboard --logdir {report['tensorboard']}` in this "
                  f"folder ({live}`summary`: accuracy vs images and the MSE, accuracy and "
                  f"time of each step)."]
    return "\n".join(lines) + "\n"


def environment() -> dict[str, Any]:
    """Versions, machine and commit: what a reproduction needs."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    import recast

    return {"recast": recast.__version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__, "python": platform.python_version(),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "cpu_count": torch.get_num_threads(), "commit": commit}
