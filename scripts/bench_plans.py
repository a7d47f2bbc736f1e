"""Planned students' sizes: mobile targets, widths and budgets, teacher vs student.

Sizes do not depend on training, so every row is an untrained model planned
as `recast report MODEL --target KIND (--width R | --budget-mults R | ...)`
would plan it; params and mults come from the compression report (fvcore).
Results: benchmarks/plans.json and benchmarks/plans.md.

    python scripts/bench_plans.py
"""

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recast.result import code_commit  # noqa: E402
from recast.models import build_model  # noqa: E402
from recast.plan import make_plan  # noqa: E402
from recast.report import compression_report  # noqa: E402
from recast.walker import walk  # noqa: E402

# (model, input size, target, plan options)
ROWS: list[tuple[str, int, str, dict[str, Any]]] = [
    ("vgg16", 32, "conv", {"width": 0.4}),
    *[(model, 224, target, {"width": 0.5}) for model in ("resnet50", "mobilenet_v2")
      for target in ("conv", "dwconv", "mbconv")],
    *[(model, size, target, {f"budget_{measure}": 0.25})
      for model, size, target in (("vgg16", 32, "conv"), ("resnet50", 224, "conv"),
                                  ("mobilenet_v2", 224, "mbconv"))
      for measure in ("params", "mults")],
]


def measure(model: str, size: int, target: str, options: dict[str, Any]) -> dict[str, Any]:
    teacher = build_model(model, input_size=size, num_classes=10 if size == 32 else 1000)
    started = time.perf_counter()
    width = options.get("width")
    budgets = {k: v for k, v in options.items() if k != "width"}
    plan = make_plan(walk(teacher.eval(), (1, 3, size, size)), target, width, **budgets)
    seconds = time.perf_counter() - started
    report = compression_report(plan, latency=False)
    t, s = report["teacher"], report["student"]
    return {"model": model, "input_size": size, "target": target, "options": options,
            "teacher": {"params": t["params"], "mults": t["mults"]},
            "student": {"params": s["params"], "mults": s["mults"]},
            "ratio": {"params": report["ratio"]["params"], "mults": report["ratio"]["mults"]},
            "share": {"params": round(s["params"] / t["params"], 4),
                      "mults": round(s["mults"] / t["mults"], 4)},
            "budget": report.get("budget"), "kept": [b["name"] for b in report["blocks"]
                                                      if b.get("kept_reason")],
            "plan_seconds": round(seconds, 2)}


def markdown(results: dict[str, Any]) -> str:
    lines = ["# Planned students: mobile targets, widths and budgets", "",
             f"- command: `{results['command']}`", f"- commit: {results['commit']}",
             f"- machine: {results['machine']}", "",
             "Untrained models: sizes do not depend on training. share = student / teacher.",
             "", "| model | target | asked | params (share) | mults (share) | kept blocks |",
             "|---|---|---|---:|---:|---|"]
    for row in results["rows"]:
        asked = ", ".join(f"{k} {v}" for k, v in row["options"].items())
        lines.append(
            f"| {row['model']} ({row['input_size']}) | {row['target']} | {asked} | "
            f"{row['student']['params']:,} ({row['share']['params']}) | "
            f"{row['student']['mults']:,} ({row['share']['mults']}) | "
            f"{', '.join(row['kept']) or '-'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    commit = code_commit(short=True)
    results = {"command": "python scripts/bench_plans.py", "commit": commit,
               "machine": f"{platform.machine()}, {platform.python_version()}",
               "rows": []}
    for row in ROWS:
        print(*row, flush=True)
        results["rows"].append(measure(*row))
    out = ROOT / "benchmarks" / "plans"
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(markdown(results))


if __name__ == "__main__":
    main()
