"""Measure how many torchvision (or timm) classifiers the walker cuts into an exact chain.

For every classification model in ``torchvision.models`` (random weights, eval
mode) this walks the model, checks that running the blocks in order gives the
model's own output, and records the block kinds. Results go to
``benchmarks/walk_coverage.json`` and ``benchmarks/walk_coverage.md``.

Run from the repository root::

    PYTHONPATH=. python scripts/walk_coverage.py [--models a,b] [--skip-large] \
        [--plan mbconv:0.5[,conv:0.5]] [--zoo timm]

``--plan KIND:WIDTH`` also plans a student of that kind and width for every
exact chain (recast.plan.make_plan, never bigger by default) and records its
params and mults against the teacher's, and how many blocks it recasts or keeps;
several comma-separated plans give one set of columns each.

``--zoo timm`` (``pip install recast[timm]``) runs the fixed sample
TIMM_SAMPLE (scripts/timm_sample.py) instead: the smallest variant of each timm CNN family
(plus a few hybrids and one transformer, LeViT, whose blocks are named and
kept), built with ``timm.create_model(name, pretrained=False, num_classes=10)``
at the input size of its ``pretrained_cfg`` and never downloaded. Its reports
default to ``benchmarks/walk_coverage_timm.json`` and ``.md``, and a walk that
takes more than ``--time-limit`` seconds of CPU time (60 by default for timm) is
stopped and counted as a timeout.
"""

import argparse
import datetime
import gc
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from recast.walker import walk

# scripts/ is on the path when this file runs
from coverage_plans import plan_sizes
from coverage_report import (ATOL, DEFAULT_SIZE, INPUT_SIZES, ROOT, RTOL, ModelResult,
                             commit, fmt_diff, fmt_seconds, machine, one_line, plan_specs,
                             previous_results, summarize, summary_line, write_outputs)
from timm_sample import TIMM_SAMPLE

LARGE_PARAMS = 300_000_000
TIMM_TIME_LIMIT = 60.0  # seconds of walking before a timm model counts as a timeout


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", choices=("torchvision", "timm"), default="torchvision",
                        help="torchvision: every classifier; timm: the fixed TIMM_SAMPLE")
    parser.add_argument("--models", default="",
                        help="comma-separated model names (default: all classifiers, or "
                             "the timm sample)")
    parser.add_argument("--skip-large", action="store_true",
                        help=f"skip models with more than {LARGE_PARAMS // 10**6}M params")
    parser.add_argument("--seed", type=int, default=0, help="seed of the check input")
    parser.add_argument("--plan", default="", metavar="KIND:WIDTH",
                        help="also plan a student, e.g. mbconv:0.5, and record its size; "
                             "several comma-separated, e.g. dwconv:0.5,conv:0.5")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                        help="stop a walk after this much CPU time, a timeout "
                             f"(default: none for torchvision, {TIMM_TIME_LIMIT:g} for timm)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the models already in --json (same --zoo and --plan) "
                             "and run only the others: a long survey killed midway goes on")
    parser.add_argument("--json", type=Path, default=None,
                        help="JSON output path (default benchmarks/walk_coverage.json, "
                             "or walk_coverage_timm.json for --zoo timm)")
    parser.add_argument("--md", type=Path, default=None,
                        help="Markdown output path (default benchmarks/walk_coverage.md, "
                             "or walk_coverage_timm.md)")
    args = parser.parse_args(argv)
    stem = "walk_coverage" + ("_timm" if args.zoo == "timm" else "")
    args.json = args.json or ROOT / f"benchmarks/{stem}.json"
    args.md = args.md or ROOT / f"benchmarks/{stem}.md"
    if args.time_limit is None and args.zoo == "timm":
        args.time_limit = TIMM_TIME_LIMIT
    return args


def build(zoo: str, name: str) -> nn.Module:
    """A randomly initialised classifier of the zoo (never downloads weights)."""
    if zoo == "timm":
        import timm  # optional: pip install recast[timm]

        return timm.create_model(name, pretrained=False, num_classes=10)
    return torchvision.models.get_model(name, weights=None)


def input_size(zoo: str, name: str, model: nn.Module | None = None) -> int:
    """H = W of the check input: timm's pretrained_cfg size, else INPUT_SIZES or 224."""
    if zoo == "timm" and model is not None:
        size = getattr(model, "pretrained_cfg", {}).get("input_size")
        if size:
            return int(size[-1])
    return INPUT_SIZES.get(name, DEFAULT_SIZE)


class WalkTimeout(Exception):
    """The walk took longer than --time-limit."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise WalkTimeout in the block after ``seconds`` of this process's CPU time
    (SIGPROF, so a busy shared machine does not time a model out; none if falsy)."""
    if not seconds or not hasattr(signal, "setitimer"):
        yield
        return

    def alarm(signum: int, frame: Any) -> None:
        raise WalkTimeout(f"walk took more than {seconds:g} s of CPU time (--time-limit)")

    previous = signal.signal(signal.SIGPROF, alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def count_params(name: str, zoo: str = "torchvision") -> int:
    """Parameter count of a model, built on the meta device (no memory, fast)."""
    try:
        with torch.device("meta"):
            model = build(zoo, name)
    except Exception:  # some initialisers may not support meta tensors
        model = build(zoo, name)
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


def run_model(name: str, seed: int, plan: str = "", zoo: str = "torchvision",
              family: str = "", limit: float | None = None) -> ModelResult:
    """Build, walk and check one model; ``plan`` is one or more comma-separated specs."""
    result = ModelResult(name=name, family=family, input_size=input_size(zoo, name))
    model: nn.Module | None = None
    chain = None
    try:
        model = build(zoo, name).eval()
        size = result.input_size = input_size(zoo, name, model)
        result.params = sum(p.numel() for p in model.parameters())
        with time_limit(limit):
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
        if plan and result.status in ("ok", "unclassified"):  # every exact chain
            for spec in plan_specs(plan):
                result.plans[spec] = plan_sizes(chain, spec)
            result.plan = next(iter(result.plans.values()))
    except WalkTimeout as exc:
        result.status = "timeout"
        result.error = str(exc)
    except Exception as exc:  # one model failing must not stop the survey
        result.status = "error"
        result.error = one_line(exc)
    finally:
        del model, chain
        gc.collect()
    return result


def model_names(selection: str, zoo: str = "torchvision") -> list[str]:
    """The requested models, or every torchvision classifier, or the timm sample."""
    if zoo == "timm":
        import timm

        available = timm.list_models()
        if not selection:
            return [name for _, name in TIMM_SAMPLE]
    else:
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
    names = model_names(args.models, args.zoo)
    family = {name: fam for fam, name in TIMM_SAMPLE} if args.zoo == "timm" else {}
    command = "PYTHONPATH=. python scripts/walk_coverage.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    report: dict[str, Any] = {
        "command": command.strip(),
        "commit": commit(),
        "machine": machine(args.zoo),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "plan": args.plan,
        "zoo": args.zoo,
        "time_limit": args.time_limit,
    }
    specs = plan_specs(args.plan)
    done, before = previous_results(args) if args.resume else ({}, 0.0)
    if done:
        report["resumed"] = f"{len(done)} models kept from the interrupted run"
    results: list[ModelResult] = []
    start = time.perf_counter() - before
    for i, name in enumerate(names, 1):
        prefix = f"[{i}/{len(names)}] {name}"
        if name in done:
            results.append(done[name])
            print(f"{prefix}: {done[name].status} (kept from the interrupted run)", flush=True)
            continue
        if args.skip_large:
            params = count_params(name, args.zoo)
            if params > LARGE_PARAMS:
                result = ModelResult(name=name, family=family.get(name, ""),
                                     status="skipped", params=params,
                                     input_size=input_size(args.zoo, name),
                                     error=f"{params / 1e6:.0f}M params > "
                                           f"{LARGE_PARAMS // 10**6}M (--skip-large)")
                results.append(result)
                print(f"{prefix}: skipped ({result.error})", flush=True)
                continue
        print(f"{prefix} ...", end=" ", flush=True)
        result = run_model(name, args.seed, args.plan, args.zoo, family.get(name, ""),
                           args.time_limit)
        results.append(result)
        detail = (f"{result.blocks} blocks {result.kinds} walk {fmt_seconds(result.walk_seconds)}s"
                  f" diff {fmt_diff(result.max_abs_diff)}")
        print(f"{result.status}: {detail}" + (f" | {result.error}" if result.error else ""),
              flush=True)
        report["summary"] = summarize(results, time.perf_counter() - start, specs)
        report["models"] = [asdict(r) for r in results]
        write_outputs(args, report, results)  # partial results survive a crash
    report["summary"] = summarize(results, time.perf_counter() - start, specs)
    report["models"] = [asdict(r) for r in results]
    write_outputs(args, report, results)
    print(summary_line(report["summary"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
