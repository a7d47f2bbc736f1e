"""Measure how many torchvision classifiers the walker cuts into an exact chain.

For every classification model in ``torchvision.models`` (random weights, eval
mode) this walks the model, checks that running the blocks in order gives the
model's own output, and records the block kinds. Results go to
``benchmarks/walk_coverage.json`` and ``benchmarks/walk_coverage.md``.

Run from the repository root::

    PYTHONPATH=. python scripts/walk_coverage.py [--models a,b] [--skip-large] \
        [--plan mbconv:0.5]

``--plan KIND:WIDTH`` also plans a student of that kind and width for every
exact chain (recast.plan.make_plan, never bigger by default) and records its
params and mults against the teacher's, and how many blocks it recasts or keeps.
"""

import argparse
import datetime
import gc
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from recast.errors import RecastError, WalkError
from recast.plan import make_plan
from recast.walker import walk

ROOT = Path(__file__).resolve().parent.parent
INPUT_SIZES = {"inception_v3": 299}  # every other model takes 224x224
DEFAULT_SIZE = 224
LARGE_PARAMS = 300_000_000
RTOL = ATOL = 1e-5
STATUSES = ("ok", "unclassified", "inexact", "error", "skipped")


@dataclass
class ModelResult:
    """What one model's walk gave; ``error`` is '' unless something failed."""

    name: str
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="",
                        help="comma-separated model names (default: all classifiers)")
    parser.add_argument("--skip-large", action="store_true",
                        help=f"skip models with more than {LARGE_PARAMS // 10**6}M params")
    parser.add_argument("--seed", type=int, default=0, help="seed of the check input")
    parser.add_argument("--plan", default="", metavar="KIND:WIDTH",
                        help="also plan a student, e.g. mbconv:0.5, and record its size")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/walk_coverage.json",
                        help="JSON output path")
    parser.add_argument("--md", type=Path, default=ROOT / "benchmarks/walk_coverage.md",
                        help="Markdown output path")
    return parser.parse_args(argv)


def one_line(exc: BaseException) -> str:
    """A one-line message: WalkError's own text, else 'Type: first line'."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, WalkError):
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def count_params(name: str) -> int:
    """Parameter count of a model, built on the meta device (no memory, fast)."""
    try:
        with torch.device("meta"):
            model = torchvision.models.get_model(name, weights=None)
    except Exception:  # some initialisers may not support meta tensors
        model = torchvision.models.get_model(name, weights=None)
    count = sum(p.numel() for p in model.parameters())
    del model
    return count


def compare(expected: Any, got: Any) -> tuple[bool, float | None, str]:
    """(allclose, max |difference| or None if incomparable, problem) of two outputs."""
    if not isinstance(expected, torch.Tensor) or not isinstance(got, torch.Tensor):
        return False, None, (
            f"outputs are {type(expected).__name__} and {type(got).__name__}, not tensors")
    if expected.shape != got.shape:
        return False, None, (
            f"output shapes differ: model {tuple(expected.shape)}, chain {tuple(got.shape)}")
    diff = float((expected - got).abs().max()) if expected.numel() else 0.0
    return torch.allclose(expected, got, rtol=RTOL, atol=ATOL), diff, ""


def plan_sizes(chain: Any, plan: str) -> dict[str, Any]:
    """Student vs teacher params and mults of the plan ``KIND:WIDTH`` (or its error)."""
    kind, _, width = plan.partition(":")
    start = time.perf_counter()
    try:
        made = make_plan(chain, kind, float(width or 1.0))
    except RecastError as exc:
        return {"error": one_line(exc)}
    teacher, student = made.size["teacher"], made.size["student"]
    return {"params": student["params"], "mults": student["mults"],
            "params_ratio": round(student["params"] / max(1, teacher["params"]), 4),
            "mults_ratio": round(student["mults"] / max(1, teacher["mults"]), 4),
            "recast": len(made.recast_steps()), "kept": len(made.kept_steps()),
            "seconds": round(time.perf_counter() - start, 2)}


def run_model(name: str, seed: int, plan: str = "") -> ModelResult:
    """Build, walk and check one model."""
    size = INPUT_SIZES.get(name, DEFAULT_SIZE)
    result = ModelResult(name=name, input_size=size)
    model: nn.Module | None = None
    chain = None
    try:
        model = torchvision.models.get_model(name, weights=None).eval()
        result.params = sum(p.numel() for p in model.parameters())
        chain = walk(model, input_shape=(1, 3, size, size))
        result.walk_seconds = chain.walk_seconds
        result.blocks = len(chain.blocks)
        result.kinds = chain.kinds()
        result.residual_blocks = [b.name for b in chain.blocks if b.kind == "residual"]
        start = time.perf_counter()
        x = torch.randn((1, 3, size, size), generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            expected = model(x)
            got = chain.as_module()(x)
        result.check_seconds = time.perf_counter() - start
        close, diff, problem = compare(expected, got)
        result.max_abs_diff = diff
        if not close:
            result.status = "inexact"
            result.error = problem or f"max abs diff {diff:.3g} > rtol=atol={RTOL:g}"
        elif result.residual_blocks:
            result.status = "unclassified"
            result.error = (f"{len(result.residual_blocks)} unclassified residual block(s): "
                            + ", ".join(result.residual_blocks[:5])
                            + (", ..." if len(result.residual_blocks) > 5 else ""))
        else:
            result.status = "ok"
        if plan and result.status == "ok":
            result.plan = plan_sizes(chain, plan)
    except Exception as exc:  # one model failing must not stop the survey
        result.status = "error"
        result.error = one_line(exc)
    finally:
        del model, chain
        gc.collect()
    return result


def commit() -> str:
    """The current git commit, or 'uncommitted'."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True)
        return out.stdout.strip() or "uncommitted"
    except (OSError, subprocess.CalledProcessError):
        return "uncommitted"


def machine() -> dict[str, Any]:
    """Where the survey ran."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }


def summarize(results: list[ModelResult], seconds: float) -> dict[str, Any]:
    """Counts per status; percentages are over the models that were run."""
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    run = len(results) - counts["skipped"]
    return {
        "models": run,
        **counts,
        "percent_ok": round(100.0 * counts["ok"] / run, 1) if run else 0.0,
        "total_seconds": round(seconds, 1),
    }


def summary_line(summary: dict[str, Any]) -> str:
    """The headline sentence of the report."""
    return (f"{summary['ok']} of {summary['models']} models ({summary['percent_ok']}%) "
            "split into an exact chain with every residual/dense block classified")


def fmt_seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def fmt_diff(value: float | None) -> str:
    return "" if value is None else f"{value:.2e}"


def to_markdown(report: dict[str, Any], results: list[ModelResult]) -> str:
    """The Markdown report: header, summary, table, failures."""
    m = report["machine"]
    s = report["summary"]
    lines = [
        "# Walker coverage of torchvision classifiers",
        "",
        f"Command: `{report['command']}`",
        "",
        f"- Commit: `{report['commit']}`",
        f"- Machine: {m['platform']}, {m['cpu_count']} CPUs ({m['torch_threads']} torch "
        f"threads), Python {m['python']}, torch {m['torch']}, torchvision {m['torchvision']}",
        f"- Date: {report['date']}",
        f"- Check: model(x) vs chain.as_module()(x) on one random (1, 3, H, W) input, "
        f"torch.allclose(rtol={RTOL:g}, atol={ATOL:g}); random weights, eval mode; "
        f"H = W = {DEFAULT_SIZE} except "
        + ", ".join(f"{k} {v}" for k, v in INPUT_SIZES.items()),
        "- Walk time: chain.walk_seconds, one wall-clock run per model (trace, shape "
        "propagation, grouping); noisy on a shared machine",
        "",
        f"**{summary_line(s)}.**",
        "",
        "Statuses: " + ", ".join(f"{k} {s[k]}" for k in STATUSES if s[k] or k == "ok")
        + f"; total time {s['total_seconds']} s.",
        "",
        "| model | status | blocks | blocks by kind | walk time (s) | max abs diff |"
        + (f" {report['plan']}: params | mults | recast / kept |" if report.get("plan") else ""),
        "|---|---|---:|---|---:|---:|" + ("---:|---:|---:|" if report.get("plan") else ""),
    ]
    for r in results:
        kinds = ", ".join(f"{k} {v}" for k, v in r.kinds.items())
        lines.append(f"| {r.name} | {r.status} | {r.blocks or ''} | {kinds} | "
                     f"{fmt_seconds(r.walk_seconds)} | {fmt_diff(r.max_abs_diff)} |"
                     + (fmt_plan(r.plan) if report.get("plan") else ""))
    if report.get("plan"):
        kind, _, width = report["plan"].partition(":")
        lines += ["", f"Plan columns: `make_plan(chain, {kind!r}, {width or 1.0})` sizes as "
                  "student/teacher ratios (params, mults); blocks whose target would be "
                  "bigger are kept. A plan error is shown in the params column."]
    failures = [r for r in results if r.status != "ok"]
    lines += ["", "## Not ok", ""]
    if not failures:
        lines.append("None.")
    for r in failures:
        message = r.error.replace("`", "'")
        lines.append(f"- **{r.name}** ({r.status}): {message}")
    return "\n".join(lines) + "\n"


def fmt_plan(plan: dict[str, Any]) -> str:
    """The plan columns of one row."""
    if not plan:
        return " | | |"
    if "error" in plan:
        return f" {plan['error'].replace('|', '/')[:80]} | | |"
    return (f" {human(plan['params'])} ({plan['params_ratio']:.3f}) | {human(plan['mults'])} "
            f"({plan['mults_ratio']:.3f}) | {plan['recast']} / {plan['kept']} |")


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


def model_names(selection: str) -> list[str]:
    """The requested models, or every torchvision classifier."""
    available = torchvision.models.list_models(module=torchvision.models)
    if not selection:
        return available
    names = [n.strip() for n in selection.split(",") if n.strip()]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(f"unknown model(s): {', '.join(unknown)}")
    return names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = model_names(args.models)
    command = "PYTHONPATH=. python scripts/walk_coverage.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    report: dict[str, Any] = {
        "command": command.strip(),
        "commit": commit(),
        "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "plan": args.plan,
    }
    results: list[ModelResult] = []
    start = time.perf_counter()
    for i, name in enumerate(names, 1):
        prefix = f"[{i}/{len(names)}] {name}"
        if args.skip_large:
            params = count_params(name)
            if params > LARGE_PARAMS:
                result = ModelResult(name=name, status="skipped", params=params,
                                     input_size=INPUT_SIZES.get(name, DEFAULT_SIZE),
                                     error=f"{params / 1e6:.0f}M params > "
                                           f"{LARGE_PARAMS // 10**6}M (--skip-large)")
                results.append(result)
                print(f"{prefix}: skipped ({result.error})", flush=True)
                continue
        print(f"{prefix} ...", end=" ", flush=True)
        result = run_model(name, args.seed, args.plan)
        results.append(result)
        detail = (f"{result.blocks} blocks {result.kinds} walk {fmt_seconds(result.walk_seconds)}s"
                  f" diff {fmt_diff(result.max_abs_diff)}")
        print(f"{result.status}: {detail}" + (f" | {result.error}" if result.error else ""),
              flush=True)
        report["summary"] = summarize(results, time.perf_counter() - start)
        report["models"] = [asdict(r) for r in results]
        write_outputs(args, report, results)  # partial results survive a crash
    report["summary"] = summarize(results, time.perf_counter() - start)
    report["models"] = [asdict(r) for r in results]
    write_outputs(args, report, results)
    print(summary_line(report["summary"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
