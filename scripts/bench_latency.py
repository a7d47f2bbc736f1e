"""Mults ratio vs measured speed-up of the benchmark students, on this CPU.

For each benchmark pair the teacher and its planned student are built from
scratch weights (latency does not depend on training) and timed in the same
process: PyTorch eager, PyTorch channels_last and ONNX Runtime, at batch 1
and 64, with one thread and with all threads. Teacher and student are timed
in alternating rounds and each number is the median of the rounds' medians,
so a load change on a shared machine hits both about equally. Writes
benchmarks/latency.json and benchmarks/latency.md.

    python scripts/bench_latency.py
"""

import argparse
import io
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recast.counting import count_costs  # noqa: E402
from recast.result import code_commit  # noqa: E402
from recast.onnx_io import write_onnx  # noqa: E402
from recast.latency import (explain_speedup, measure_latency_ms,  # noqa: E402
                            measure_onnx_latency_ms, onnx_session)
from recast.models import build_model  # noqa: E402
from recast.plan import make_plan  # noqa: E402
from recast.walker import walk  # noqa: E402

PAIRS = [  # model, teacher width, target, student width: the cifar10.md benchmarks
    ("vgg16", 0.25, "conv", 0.4),
    ("resnet20", 0.5, "conv", 1.0),
    ("wrn_16_4", 0.25, "basic", 0.5),
]
SHAPE = (1, 3, 32, 32)
BATCHES = (1, 64)
ENGINES = ("eager", "channels_last", "onnxruntime")
NOISY = 1.5  # round medians further apart than this: the load changed mid-measurement


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default=f"1,{os.cpu_count()}",
                        help="thread counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    parser.add_argument("--max-seconds", type=float, default=1.0,
                        help="time cap of one measurement (at least 3 runs)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "latency"))
    parser.add_argument("--render", action="store_true",
                        help="only rewrite OUT.md from OUT.json (no measuring)")
    return parser.parse_args()


def command() -> str:
    """The command line as run from the repository root."""
    script = Path(sys.argv[0]).resolve()
    script_text = str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else str(script)
    return "python " + " ".join(shlex.quote(a) for a in [script_text, *sys.argv[1:]])


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()


def timed_pair(measure: Callable[[Any, int], float], teacher: Any, student: Any,
               batch: int, rounds: int) -> dict[str, float]:
    """Median over alternating rounds of each model's median latency; ``spread`` is the
    largest max/min ratio of a model's round medians (near 1: a quiet machine)."""
    times: dict[str, list[float]] = {"teacher": [], "student": []}
    for _ in range(rounds):
        for name, model in (("teacher", teacher), ("student", student)):
            times[name].append(measure(model, batch))
    t, s = (statistics.median(times[k]) for k in ("teacher", "student"))
    spread = max(max(v) / min(v) for v in times.values())
    return {"teacher_ms": round(t, 3), "student_ms": round(s, 3), "speedup": round(t / s, 2),
            "spread": round(spread, 2)}


def bench_pair(model: str, teacher_width: float, target: str, width: float,
               threads_list: list[int], args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    teacher = build_model(model, width=teacher_width).eval()
    student = make_plan(walk(teacher, SHAPE), target, width).build_student().eval()
    example = torch.randn(SHAPE)
    t_cost, _ = count_costs(teacher, example)
    s_cost, _ = count_costs(student, example)
    mults_ratio = t_cost.mults / s_cost.mults
    onnx_bytes = {}
    for name, net in (("teacher", teacher), ("student", student)):
        buffer = io.BytesIO()
        write_onnx(net, SHAPE, buffer, 17, dynamic_batch=True)
        onnx_bytes[name] = buffer.getvalue()
    result: dict[str, Any] = {
        "model": model, "teacher_width": teacher_width, "target": target, "width": width,
        "teacher": {"params": t_cost.params, "mults": t_cost.mults},
        "student": {"params": s_cost.params, "mults": s_cost.mults},
        "mults_ratio": round(mults_ratio, 2), "latency": {}, "explanations": {},
    }
    cap = args.max_seconds
    for threads in threads_list:
        rows: dict[str, Any] = {}
        for layout in ("eager", "channels_last"):
            def measure(net, batch, cl=layout == "channels_last", n=threads):
                return measure_latency_ms(net, SHAPE, batch, max_seconds=cap, threads=n,
                                          channels_last=cl)
            rows[layout] = {f"batch{b}": timed_pair(measure, teacher, student, b, args.rounds)
                            for b in BATCHES}
        # a session per measurement: an idle session's spinning pool threads would
        # compete with the one being timed
        def measure_ort(model_bytes, batch, n=threads):
            session = onnx_session(model_bytes, n)
            return measure_onnx_latency_ms(session, SHAPE, batch, max_seconds=cap)
        rows["onnxruntime"] = {f"batch{b}": timed_pair(measure_ort, onnx_bytes["teacher"],
                                                       onnx_bytes["student"], b, args.rounds)
                               for b in BATCHES}
        result["latency"][f"threads{threads}"] = rows
        for engine in ENGINES:
            for b in BATCHES:
                line = explain_speedup(mults_ratio, rows[engine][f"batch{b}"]["speedup"],
                                       student)
                if line:
                    result["explanations"][f"threads{threads}/{engine}/batch{b}"] = line
        print(f"{model}: threads {threads} done", flush=True)
    return result


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    dirty = " (working tree had uncommitted changes)" if report["dirty"] else ""
    lines = [
        "# Latency: mults ratio vs measured speed-up", "",
        f"Command: `{report['command']}`  ",
        f"Commit: {report['commit']}{dirty}  ",
        f"Machine: {m['platform']}, {m['cpu_count']} CPU cores, Python {m['python']}, "
        f"torch {m['torch']}, onnxruntime {m['onnxruntime']}; threads {report['threads']}  ",
        f"Load average (1 min) before / after: {report['load_before']} / "
        f"{report['load_after']}; wall time {report['seconds']} s", "",
        "Method: teacher and planned student from scratch weights (latency does not depend "
        "on training), CIFAR input 3x32x32, one process. Each number is the median of "
        f"{report['rounds']} alternating teacher/student rounds, each the median of up to "
        "10 timed forward passes after 2 warm-up passes (at least 3, capped at "
        f"{report['max_seconds']} s). Speed-up = teacher ms / student ms; mults = conv and "
        f"matrix-multiply multiplies (recast.counting). * marks a speed-up whose round "
        f"medians varied more than {NOISY}x (the machine's load changed under it).", "",
        "| model -> student | mults ratio | threads | batch | eager | channels_last "
        "| ONNX Runtime | student ms (eager / cl / ORT) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        label = f"{r['model']} w{r['teacher_width']} -> {r['target']} {r['width']}"
        for threads, rows in r["latency"].items():
            for b in BATCHES:
                cells = [rows[e][f"batch{b}"] for e in ENGINES]
                lines.append(
                    f"| {label} | {r['mults_ratio']}x | {threads.removeprefix('threads')} | "
                    f"{b} | " + " | ".join(f"{c['speedup']}x{'*' if c['spread'] > NOISY else ''}"
                                           for c in cells)
                    + " | " + " / ".join(f"{c['student_ms']}" for c in cells) + " |")
    lines += ["", "Teacher ms (eager / channels_last / ORT):", ""]
    for r in report["results"]:
        for threads, rows in r["latency"].items():
            text = "; ".join(f"batch {b}: " + " / ".join(
                str(rows[e][f"batch{b}"]["teacher_ms"]) for e in ENGINES) for b in BATCHES)
            lines.append(f"- {r['model']} w{r['teacher_width']}, {threads}: {text}")
    lines += ["", "## explain_speedup", "",
              "Where the measured speed-up is under half the mults ratio, and the cause "
              "recast.latency.explain_speedup names:", ""]
    for r in report["results"]:
        causes = sorted({line.split(": likely ", 1)[1] for line in r["explanations"].values()})
        cases = ", ".join(r["explanations"]) or "none"
        lines.append(f"- {r['model']}: {len(r['explanations'])} of "
                     f"{len(r['latency']) * len(ENGINES) * len(BATCHES)} cases ({cases})"
                     + (f"; likely {'; '.join(causes)}" if causes else ""))
    return "\n".join(lines + ["", "## What the numbers say", ""] + notes(report)) + "\n"


def notes(report: dict[str, Any]) -> list[str]:
    """Statements computed from this run's numbers, so a rerun cannot contradict them."""
    out = []
    for r in report["results"]:
        rows = r["latency"].get("threads1")
        if not rows:
            continue
        ups = [rows[e][f"batch{b}"]["speedup"] for e in ENGINES for b in BATCHES]
        eager, ort = (rows[e]["batch1"]["student_ms"] for e in ("eager", "onnxruntime"))
        out.append(f"- {r['model']}, 1 thread: speed-up {min(ups)}x to {max(ups)}x across "
                   f"engines and batches against a mults ratio of {r['mults_ratio']}x "
                   f"({min(ups) / r['mults_ratio']:.0%} to {max(ups) / r['mults_ratio']:.0%} "
                   f"of it); at batch 1 ONNX Runtime runs the student {eager / ort:.1f}x "
                   f"faster than eager PyTorch.")
    cells = [c for r in report["results"] for rows in r["latency"].values()
             for e in ENGINES for c in rows[e].values()]
    noisy = sum(c["spread"] > NOISY for c in cells)
    cores = report["machine"]["cpu_count"]
    quiet = max(report["load_before"], report["load_after"]) < cores / 2
    more = [t for t in report["threads"] if t > 1]
    if more and 1 in report["threads"]:
        pairs = [(r["latency"]["threads1"][e][b][k], r["latency"][f"threads{t}"][e][b][k])
                 for r in report["results"] for t in more for e in ENGINES
                 for b in r["latency"]["threads1"][e] for k in ("teacher_ms", "student_ms")]
        slower = [(one, many) for one, many in pairs if many > one]
        eager_slower = sum(1 for r in report["results"] for t in more for b in BATCHES
                           for k in ("teacher_ms", "student_ms")
                           if r["latency"][f"threads{t}"]["eager"][f"batch{b}"][k]
                           > r["latency"]["threads1"]["eager"][f"batch{b}"][k])
        cause = ("on a machine this loaded a second thread mostly measures contention "
                 "(likely a thread that loses its core stalls the other at each op's "
                 "barrier), so the multi-thread speed-ups say more about the load than "
                 "about the students; read the 1-thread rows" if not quiet else
                 "the machine was quiet, so where a second thread does not help it is the "
                 "model: these CIFAR-sized layers are too small to split across threads")
        out.append(f"- With {', '.join(map(str, more))} threads, {len(slower)} of {len(pairs)} "
                   f"latencies were slower than with 1 thread ({eager_slower} of "
                   f"{len(report['results']) * len(more) * len(BATCHES) * 2} in eager PyTorch, "
                   f"up to {max((m / o for o, m in slower), default=1):.0f}x): {cause}.")
    out += [
        f"- {noisy} of {len(cells)} speed-ups are marked * (unstable rounds). " + (
            f"The machine was quiet (load average above, on {cores} cores), so the "
            f"unmarked numbers can be quoted; marked ones vary from run to run."
            if quiet else
            f"The machine was shared with other training, test and benchmark runs (load "
            f"average above, on {cores} cores), so all numbers are latencies under load; "
            f"rerun on a quiet machine before quoting any single one."),
        "- Mults are a proxy: they leave out per-layer dispatch, memory traffic, BN, ReLU, "
        "pooling and residual adds, and the lower efficiency of convs with few channels, so "
        "a speed-up can fall short of the mults ratio (narrow students) or exceed it (a "
        "student that also drops the teacher's residual adds and shortcut convs).",
    ]
    return out


def main() -> None:
    args = parse_args()
    out = Path(args.out)
    if args.render:
        saved = json.loads(out.with_suffix(".json").read_text())
        out.with_suffix(".md").write_text(markdown(saved))
        return
    threads_list = [int(t) for t in args.threads.split(",")]
    import onnxruntime

    start, load_before = time.time(), round(os.getloadavg()[0], 2)
    results = [bench_pair(*pair, threads_list, args) for pair in PAIRS]
    report = {
        "command": command(),
        "commit": code_commit(short=True), "dirty": bool(git("status", "--porcelain")),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "threads": threads_list, "rounds": args.rounds, "max_seconds": args.max_seconds,
        "load_before": load_before, "load_after": round(os.getloadavg()[0], 2),
        "seconds": round(time.time() - start, 1), "results": results,
    }
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
