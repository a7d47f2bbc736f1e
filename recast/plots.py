"""Pictures of a finished run: PNG plots (matplotlib) and TensorBoard events.

Both libraries are optional extras (``pip install 'recast[plots,tensorboard]'``);
without them the run folder simply has no pictures, and report.md says so.
"""

from pathlib import Path
from typing import Any


def write_plots(report: dict[str, Any], folder: Path) -> list[str]:
    """Per-block MSE and accuracy after each step; accuracy vs mults. Paths out."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    (folder / "plots").mkdir(exist_ok=True)
    steps = [(b["index"], b["name"], b["step"]) for b in report["blocks"] if b.get("step")]
    written = []
    if steps:
        figure, (mse, accuracy) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
        names = [name for _, name, _ in steps]
        mse.bar(names, [s["final_mse"] for _, _, s in steps])
        mse.set(ylabel="final MSE", title="per recast block")
        accuracy.plot(names, [s["accuracy_after"] for _, _, s in steps], marker="o")
        accuracy.set(ylabel="test accuracy after the step (%)", xlabel="block")
        accuracy.tick_params(axis="x", rotation=60)
        written.append(_save(figure, folder / "plots" / "steps.png", plt))
    figure, axes = plt.subplots(figsize=(6, 4))
    for who in ("teacher", "student"):
        if report[who].get("accuracy") is not None:
            axes.scatter(report[who]["mults"] / 1e6, report[who]["accuracy"], s=60, label=who)
    for name, run in report.get("baselines", {}).items():
        axes.scatter(report["student"]["mults"] / 1e6, run["accuracy"], marker="x", label=name)
    axes.set(xlabel="mults (millions)", ylabel="test accuracy (%)", title="accuracy vs mults")
    axes.legend()
    written.append(_save(figure, folder / "plots" / "accuracy_vs_mults.png", plt))
    return [str(Path(p).relative_to(folder)) for p in written]


def write_tensorboard(report: dict[str, Any], folder: Path) -> str | None:
    """Accuracy vs images and per-step results as TensorBoard scalars under
    folder/tensorboard/summary (beside the live events a CLI run writes)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    import shutil

    # the per-step summary; the live curves sit beside it in tensorboard/live*
    summary = folder / "tensorboard" / "summary"
    shutil.rmtree(summary, ignore_errors=True)  # ours: a rerun replaces it
    writer = SummaryWriter(str(summary))
    for point in report.get("curve", []):
        writer.add_scalar("test/accuracy_vs_images", point["accuracy"], point["images"])
    number = 0
    for block in report["blocks"]:
        if block.get("step"):
            number += 1
            writer.add_scalar("step/final_mse", block["step"]["final_mse"], number)
            writer.add_scalar("step/accuracy_after", block["step"]["accuracy_after"], number)
            writer.add_scalar("step/seconds", block["step"]["seconds"], number)
    writer.close()
    return "tensorboard"


def _save(figure, path: Path, plt) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
