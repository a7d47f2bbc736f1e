"""What scripts/walk_coverage.py records per model, and its JSON summary and Markdown.

Kept apart from the survey loop so the report's schema and wording read in one
place (the survey only runs models and fills :class:`ModelResult`).
"""

import argparse
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision

from recast.errors import WalkError
from recast.result import code_commit

ROOT = Path(__file__).resolve().parent.parent
INPUT_SIZES = {"inception_v3": 299}  # every other model takes 224x224
DEFAULT_SIZE = 224
RTOL = ATOL = 1e-5
STATUSES = ("ok", "unclassified", "inexact", "error", "timeout", "skipped")


@dataclass
class ModelResult:
    """What one model's walk gave; ``error`` is '' unless something failed."""

    name: str
    family: str = ""  # --zoo timm: the model's family in TIMM_SAMPLE
    status: str = "error"
    input_size: int = DEFAULT_SIZE
    params: int = 0
    blocks: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    walk_seconds: float | None = None
    check_seconds: float | None = None
    max_abs_diff: float | None = None
    residual_blocks: list[str] = field(default_factory=list)
    error: str = ""
    plan: dict[str, Any] = field(default_factory=dict)  # --plan: sizes, or its error
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)  # every --plan, by spec


def commit() -> str:
    """The current git commit, or 'uncommitted'."""
    return code_commit() or "uncommitted"


def plan_specs(plan: str) -> list[str]:
    """'dwconv:0.5,conv:0.5' -> ['dwconv:0.5', 'conv:0.5']."""
    return [p.strip() for p in plan.split(",") if p.strip()]


def machine(zoo: str = "torchvision") -> dict[str, Any]:
    """Where the survey ran."""
    extra = {}
    if zoo == "timm":
        import timm

        extra["timm"] = timm.__version__
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        **extra,
    }


def one_line(exc: BaseException) -> str:
    """A one-line message: WalkError's own text, else 'Type: first line'."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, WalkError):
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def summarize(results: list[ModelResult], seconds: float,
              plans: list[str] | None = None) -> dict[str, Any]:
    """Counts per status, exact walks, and per plan how many planned and how many
    planned a smaller student (params and mults both below the teacher's);
    percentages are over the models that were run."""
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    run = len(results) - counts["skipped"]

    def percent(n: int) -> float:
        return round(100.0 * n / run, 1) if run else 0.0

    exact = sum(r.status in ("ok", "unclassified") for r in results)
    summary: dict[str, Any] = {
        "models": run,
        **counts,
        "percent_ok": percent(counts["ok"]),
        "exact": exact,
        "percent_exact": percent(exact),
        "families": len({r.family for r in results if r.family and r.status != "skipped"}),
        "total_seconds": round(seconds, 1),
    }
    if plans:
        summary["plans"] = {}
        for spec in plans:
            sizes = [r.plans.get(spec, {}) for r in results]
            planned = sum(bool(p) and "error" not in p for p in sizes)
            fewer = sum(smaller(p) for p in sizes)
            ran = sum(p.get("forward") == "ok" for p in sizes)
            summary["plans"][spec] = {"planned": planned, "percent_planned": percent(planned),
                                      "smaller": fewer, "percent_smaller": percent(fewer),
                                      "ran": ran}
    return summary


def summary_line(summary: dict[str, Any]) -> str:
    """The headline sentence of the report."""
    return (f"{summary['ok']} of {summary['models']} models ({summary['percent_ok']}%) "
            "split into an exact chain with every residual/dense block classified")


def summary_counts(summary: dict[str, Any]) -> list[str]:
    """Walks exactly / plans / plans smaller, one line each."""
    n = summary["models"]
    lines = [(f"- Walks exactly: {summary.get('exact', summary['ok'])} of {n} "
              f"({summary.get('percent_exact', summary['percent_ok'])}%)")]
    for spec, got in summary.get("plans", {}).items():
        lines.append(f"- Plans `{spec}`: {got['planned']} of {n} ({got['percent_planned']}%); "
                     f"plans smaller (params and mults both below the teacher's"
                     f"{', the student built and run' if got.get('ran') else ''}): "
                     f"{got['smaller']} of {n} ({got['percent_smaller']}%)")
    return lines


def fmt_seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def fmt_diff(value: float | None) -> str:
    return "" if value is None else f"{value:.2e}"


def to_markdown(report: dict[str, Any], results: list[ModelResult]) -> str:
    """The Markdown report: header, summary, table, failures."""
    m = report["machine"]
    s = report["summary"]
    timm_zoo = report.get("zoo") == "timm"
    specs = plan_specs(report.get("plan") or "")
    if timm_zoo:
        families: dict[str, int] = {}
        for r in results:
            families[r.family] = families.get(r.family, 0) + 1
        other = [f"{r.name} {r.input_size}" for r in results if r.input_size != DEFAULT_SIZE]
        sizes = (f"H = W = the model's pretrained_cfg input size: {DEFAULT_SIZE}"
                 + (" except " + ", ".join(other) if other else ""))
    else:
        sizes = f"H = W = {DEFAULT_SIZE} except " + ", ".join(
            f"{k} {v}" for k, v in INPUT_SIZES.items())
    lines = [
        (f"# Walker coverage of {'a timm sample of' if timm_zoo else 'torchvision'} "
         "classifiers"),
        "",
        f"Command: `{report['command']}`",
        "",
        f"- Commit: `{report['commit']}`",
        f"- Machine: {m['platform']}, {m['cpu_count']} CPUs ({m['torch_threads']} torch "
        f"threads), Python {m['python']}, torch {m['torch']}, torchvision {m['torchvision']}"
        + (f", timm {m['timm']}" if "timm" in m else ""),
        f"- Date: {report['date']}"
        + (f" ({report['resumed']}, --resume)" if report.get("resumed") else ""),
        f"- Check: model(x) vs chain.as_module()(x) on one random (1, 3, H, W) input, "
        f"torch.allclose(rtol={RTOL:g}, atol={ATOL:g}); random weights, eval mode; " + sizes,
        "- Walk time: chain.walk_seconds, one wall-clock run per model (trace, shape "
        "propagation, grouping); noisy on a shared machine",
    ]
    if timm_zoo:
        lines += [
            f"- Sample: {len(results)} models from {len(families)} families, the fixed "
            "TIMM_SAMPLE of scripts/timm_sample.py (smallest variant of each family, "
            "`timm.create_model(name, pretrained=False, num_classes=10)`, never "
            "downloaded): " + ", ".join(f"{k} {v}" for k, v in families.items()),
            (f"- Time limit: a walk taking more than {report.get('time_limit') or 0:g} s of "
             "CPU time is stopped and counted as a timeout"),
        ]
    lines += [
        "",
        f"**{summary_line(s)}.**",
        "",
        *summary_counts(s),
        "",
        "Statuses: " + ", ".join(f"{k} {s[k]}" for k in STATUSES if s[k] or k == "ok")
        + f"; total time {s['total_seconds']} s.",
        "",
        "| model | status | blocks | blocks by kind | walk time (s) | max abs diff |"
        + "".join(f" {spec}: params | mults | recast / kept |" for spec in specs),
        "|---|---|---:|---|---:|---:|" + "---:|---:|---:|" * len(specs),
    ]
    for r in results:
        kinds = ", ".join(f"{k} {v}" for k, v in r.kinds.items())
        lines.append(f"| {r.name} | {r.status} | {r.blocks or ''} | {kinds} | "
                     f"{fmt_seconds(r.walk_seconds)} | {fmt_diff(r.max_abs_diff)} |"
                     + "".join(fmt_plan(model_plan(r, spec)) for spec in specs))
    for spec in specs:
        kind, _, width = spec.partition(":")
        lines += ["", (f"Plan columns {spec}: `make_plan(chain, {kind!r}, {width or 1.0})` "
                       "sizes as student/teacher ratios (params, mults); blocks whose target "
                       "would be bigger are kept. A plan error is shown in the params column. "
                       "Where the survey built the student and ran one forward pass (output "
                       "shape and params against the plan's), a failure shows after the "
                       "ratios.")]
    failures = [r for r in results if r.status != "ok"]
    lines += ["", "## Not ok", ""]
    if not failures:
        lines.append("None.")
    for r in failures:
        message = r.error.replace("`", "'")
        lines.append(f"- **{r.name}** ({r.status}): {message}")
    for spec in specs:
        planned = [(r.name, model_plan(r, spec)) for r in results
                   if r.status in ("ok", "unclassified")]
        misses = [(n, p) for n, p in planned if "error" in p or not smaller(p)]
        if misses:
            lines += ["", f"## Not planned smaller with {spec}", ""]
        for n, p in misses:
            lines.append(f"- **{n}**: " + (p["error"].replace("`", "'") if "error" in p else
                         f"params {p['params_ratio']:.3f}, mults {p['mults_ratio']:.3f} "
                         "of the teacher's" + ("" if p.get("forward", "ok") == "ok" else
                                               f"; the student failed to run: {p['forward']}")))
    return "\n".join(lines) + "\n"


def model_plan(result: ModelResult, spec: str) -> dict[str, Any]:
    """One model's sizes (or error) for the plan ``spec``; {} if not planned."""
    if spec in result.plans:
        return result.plans[spec]
    return result.plan  # a report from before several plans: its one plan


def smaller(plan: dict[str, Any]) -> bool:
    """Whether a plan's student has fewer params and fewer mults than the teacher
    (and, where the survey ran it, builds and runs)."""
    return bool(plan) and "error" not in plan and plan["params_ratio"] < 1 \
        and plan["mults_ratio"] < 1 and plan.get("forward", "ok") == "ok"


def fmt_plan(plan: dict[str, Any]) -> str:
    """The plan columns of one row."""
    if not plan:
        return " | | |"
    if "error" in plan:
        return f" {plan['error'].replace('|', '/')[:80]} | | |"
    failed = "" if plan.get("forward", "ok") == "ok" else " (student failed to run)"
    return (f" {human(plan['params'])} ({plan['params_ratio']:.3f}){failed} | "
            f"{human(plan['mults'])} ({plan['mults_ratio']:.3f}) | "
            f"{plan['recast']} / {plan['kept']} |")


def human(n: float) -> str:
    """14724042 -> '14.72M'."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


def write_outputs(args: argparse.Namespace, report: dict[str, Any],
                  results: list[ModelResult]) -> None:
    """Write the JSON and Markdown reports."""
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    args.md.write_text(to_markdown(report, results))


def previous_results(args: argparse.Namespace) -> tuple[dict[str, ModelResult], float]:
    """--resume: the models of an interrupted run of the same zoo and plans, and its time."""
    if not args.json.exists():
        return {}, 0.0
    old = json.loads(args.json.read_text())
    if old.get("zoo", "torchvision") != args.zoo or old.get("plan", "") != args.plan:
        raise SystemExit(f"--resume: {args.json} is a run of another --zoo or --plan")
    if old.get("commit") != commit():  # results of other code would mix in silently
        raise SystemExit(f"--resume: {args.json} was written by commit {old.get('commit')}, "
                         f"this is {commit()}; run again without --resume")
    done = {m["name"]: ModelResult(**m) for m in old.get("models", [])}
    return done, float(old.get("summary", {}).get("total_seconds", 0.0))
