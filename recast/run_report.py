"""What a finished run reports: accuracies beside the compression report, the
recast steps, and report.md. Recasts and baselines assemble their reports here.
"""

from pathlib import Path
from typing import Any

from torch import nn

from recast.plan import Plan
from recast.steps import INPUT_CONVS
from recast.report import compression_report, human, report_markdown


def trained_report(plan: Plan, student: nn.Module, teacher_accuracy: float,
                   accuracy: float) -> dict[str, Any]:
    """The compression report of a trained ``student`` with both accuracies."""
    report = compression_report(plan, student)
    report["teacher"]["accuracy"] = round(teacher_accuracy, 2)
    report["student"]["accuracy"] = round(accuracy, 2)
    report["accuracy_drop"] = round(teacher_accuracy - accuracy, 2)
    return report


def add_steps(report: dict[str, Any], steps: list, finetune: dict[str, float]) -> None:
    """Per-block step records and the fine-tune's figures, into ``report``."""
    for record in steps:
        entry = report["blocks"][record.index]
        entry["step"] = {"final_mse": round(record.final_mse, 5),
                         "accuracy_after": round(record.accuracy, 2),
                         "seconds": round(record.seconds, 1), "images": record.images,
                         "loss_at_block": record.loss_at, "warm_start": record.warm_start,
                         "joint_pass": record.together}
        if record.fit_mse_before is not None:
            entry["step"]["fit_mse"] = [round(record.fit_mse_before, 5),
                                        round(record.fit_mse_after, 5)]
            entry["step"]["fit_kind"] = record.fit_kind
    report["finetune"] = {k: int(v) if k == "images" else round(float(v), 4)
                          for k, v in finetune.items()}


def run_markdown(report: dict[str, Any]) -> str:
    """report.md: accuracy first, then the compression tables and the steps."""
    t, s = report["teacher"], report["student"]
    method = report.get("method", "recast")  # a baseline (--method kd, ...) has no steps
    title = f"{report['model']} -> {report['target']}"
    lines = [
        f"# recast report: {title}" if method == "recast" else
        f"# --method {method} report: {title} (the planned student from random weights, "
        f"not recast)",
        "",
        "| | accuracy (%) | params | mults | MACs |",
        "|---|---:|---:|---:|---:|",
        f"| teacher | {t.get('accuracy', '-')} | {human(t['params'])} | {human(t['mults'])} "
        f"| {human(t['macs'])} |",
        f"| student | {s.get('accuracy', '-')} | {human(s['params'])} | {human(s['mults'])} "
        f"| {human(s['macs'])} |",
        "",
        f"Accuracy drop {report.get('accuracy_drop', '-')} points at "
        f"{report['ratio']['mults']}x fewer mults; {method} wall time "
        f"{report.get('recast_seconds', '-')} s on {report.get('device', '-')}"
        f"{' (resumed: counts only the part after the resume)' if report.get('resumed') else ''}.",
        "",
        *_label_lines(report),
        *_generation_lines(report),
        report_markdown(report),
    ]
    if method == "recast":
        lines += _step_lines(report)
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


def _fit(step: dict[str, Any]) -> str:
    """A step's fit MSE before -> after, and what was fitted when not the target."""
    if "fit_mse" not in step:
        return "-"
    kind = step.get("fit_kind")
    return " -> ".join(map(str, step["fit_mse"])) + \
        (f" ({kind}, summed)" if kind == INPUT_CONVS else "")


def _step_lines(report: dict[str, Any]) -> list[str]:
    """The recast steps, block by block, and the fine-tune after them."""
    lines = ["## Recast steps", "", f"Block steps: {report.get('block_loss', 'MSE')}.", "",
             "| # | block | kind -> target | final block loss | test accuracy after (%) "
             "| wall time (s) | warm start | fit MSE before -> after |",
             "|---:|---|---|---:|---:|---:|---|---|"]
    for block in report["blocks"]:
        step = block.get("step")
        if step:
            lines.append(f"| {block['index']} | {block['name']} | {block['kind']} -> "
                         f"{block['target']} | {step['final_mse']} | {step['accuracy_after']} "
                         f"| {step['seconds']} | {_warm(step)} | "
                         f"{_fit(step)} |")
    if report.get("step_test_images"):
        lines += ["", f"The accuracy after each step was measured on "
                  f"{report['step_test_images']} test images, whole batches spread over "
                  f"the test set (`--step-test-images`); the student's above, and the "
                  f"fine-tune's, on all of them."]
    if report.get("block_training") == "local":
        lines += ["", "All target blocks were trained in one joint pass (`--block-training "
                  "local`): accuracy, wall time and images are that pass's, shared by "
                  "every block."]
    ft = report.get("finetune", {})
    if ft:
        lines += ["", f"Fine-tune: {report.get('finetune_loss', '')}, final loss "
                  f"{ft.get('loss', '-')}, {int(ft.get('images', 0)):,} images, "
                  f"{ft.get('seconds', '-')} s."]
    return lines


def _generation_lines(report: dict[str, Any]) -> list[str]:
    """Born-again generations: each one's teacher and student accuracy."""
    rows = report.get("generations")
    if not rows:
        return []
    return ["## Born-again generations", "",
            "Each generation's teacher is the previous generation's student (generation "
            "1's: the teacher); the student above is the last one's. Blocks, steps and "
            "fine-tune below are generation 1's; a run folder keeps each generation's "
            "student and report in `generations/G/`.", "",
            "| generation | teacher accuracy (%) | student accuracy (%) | wall time (s) |",
            "|---:|---:|---:|---:|",
            *(f"| {g['generation']} | {g['teacher_accuracy']} | {g['accuracy']} | "
              f"{g['recast_seconds']} |" for g in rows), ""]


def _label_lines(report: dict[str, Any]) -> list[str]:
    """What the run knew of labels; nothing for an ordinary labelled run."""
    lines = []
    if report.get("labels") == "none":
        lines.append("Labels: none. No label was read in training: the block steps learn "
                     "the teacher's activations, the training after them its outputs only.")
    if report.get("accuracy_is"):
        lines.append(f"Test accuracy is {report['accuracy_is']}.")
    return lines + [""] if lines else []


def _warm(step: dict[str, Any]) -> str:
    """How a target began: from the teacher's weights, or from scratch (no warm start
    exists for its source kind, e.g. an inception block into a conv)."""
    return "from the teacher" if step["warm_start"] else "none (from scratch)"
