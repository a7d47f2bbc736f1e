"""The plan columns of scripts/walk_coverage.py: plan a student of each --plan kind
and width for a walked model, size it against the teacher, and build and run it.
"""

import time
from typing import Any

import torch

from coverage_report import one_line
from recast.plan import make_plan


def plan_sizes(chain: Any, plan: str) -> dict[str, Any]:
    """Student vs teacher params and mults of the plan ``KIND:WIDTH`` (or its error),
    and whether the built student runs: ``forward`` is "ok" when it gives the
    teacher's output shape with as many params as planned, else what differed."""
    kind, _, width = plan.partition(":")
    start = time.perf_counter()
    try:
        made = make_plan(chain, kind, float(width or 1.0))
    except Exception as exc:  # noqa: BLE001 - a planner crash is recorded, not fatal
        return {"error": one_line(exc)}
    teacher, student = made.size["teacher"], made.size["student"]
    return {"params": student["params"], "mults": student["mults"],
            "params_ratio": round(student["params"] / max(1, teacher["params"]), 4),
            "mults_ratio": round(student["mults"] / max(1, teacher["mults"]), 4),
            "recast": len(made.recast_steps()), "kept": len(made.kept_steps()),
            "forward": student_forward(made, chain),
            "seconds": round(time.perf_counter() - start, 2)}


def student_forward(made: Any, chain: Any) -> str:
    """Build the planned student and run it once: "ok", or what went wrong."""
    try:
        student = made.build_student().eval()
        built = sum(p.numel() for p in student.parameters())
        with torch.no_grad():
            shape = tuple(student(torch.randn(chain.input_shape)).shape)
    except Exception as exc:  # noqa: BLE001 - a failed build or forward is recorded
        return one_line(exc)
    expected = tuple(chain.blocks[-1].out_shape)
    if shape != expected:
        return f"output {shape}, the teacher's is {expected}"
    if built != made.size["student"]["params"]:
        return f"built {built:,} params, planned {made.size['student']['params']:,}"
    return "ok"
