"""What a recast gives back: the trained student, its plan and its report, and how
they are saved (the run folder's student, report and config files)."""

import json
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from recast.files import atomic_write_text
from recast.plan import Plan
from recast.plots import write_plots, write_tensorboard
from recast.precision import NO_BFLOAT16, has_fast_bfloat16
from recast.run_report import run_markdown
from recast.serialize import save_student
from recast.settings import RecastConfig


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


def code_commit(short: bool = False) -> str | None:
    """The git commit of the code that runs (None outside a git checkout): stamped in
    config.json and in every benchmark result."""
    args = ["git", "rev-parse", *(["--short"] if short else []), "HEAD"]
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    """The CPU's model name: Linux's /proc/cpuinfo, where platform.processor() is
    empty, else that; wall times from different CPUs must not be compared."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """Architecture, CPU and whether it computes bfloat16: what wall times depend on."""
    units = "bfloat16 units" if has_fast_bfloat16(torch.device("cpu")) else NO_BFLOAT16
    return f"{platform.machine()}, {cpu_model()}, {units}"


def environment() -> dict[str, Any]:
    """Versions, machine and commit: what a reproduction needs."""
    import recast

    return {"recast": recast.__version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__, "python": platform.python_version(),
            "machine": machine(), "cpu_count": torch.get_num_threads(),
            "commit": code_commit()}
