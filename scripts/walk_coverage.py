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
:data:`TIMM_SAMPLE` instead: the smallest variant of each timm CNN family
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
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from recast.errors import WalkError
from recast.plan import make_plan
from recast.walker import walk

ROOT = Path(__file__).resolve().parent.parent
INPUT_SIZES = {"inception_v3": 299}  # every other model takes 224x224
DEFAULT_SIZE = 224
LARGE_PARAMS = 300_000_000
RTOL = ATOL = 1e-5
STATUSES = ("ok", "unclassified", "inexact", "error", "timeout", "skipped")
TIMM_TIME_LIMIT = 60.0  # seconds of walking before a timm model counts as a timeout

# The timm sample: (family, model) with the smallest variant of each CNN family
# timm 1.0 ships, a second variant where a family has a distinct block design
# (SE, blur, GroupNorm, TF "same" padding, ...), a few conv/attention hybrids,
# and LeViT, a transformer whose blocks are expected to be named and kept.
# Fixed so figures compare across commits; models are never downloaded.
TIMM_SAMPLE: tuple[tuple[str, str], ...] = (
    ("resnet", "resnet18"), ("resnet", "resnet10t"), ("resnet", "resnet26d"),
    ("resnet", "resnetblur18"), ("resnet", "resnetaa34d"), ("resnet", "resnet50_gn"),
    ("resnetv2", "resnetv2_18"), ("resnetv2", "resnetv2_50x1_bit"),
    ("resnext", "resnext50_32x4d"),
    ("seresnet", "seresnet18"), ("seresnet", "seresnext26t_32x4d"),
    ("ecaresnet", "ecaresnet26t"),
    ("skresnet", "skresnet18"),
    ("res2net", "res2net50_14w_8s"), ("res2net", "res2next50"),
    ("resnest", "resnest14d"),
    ("resnetrs", "resnetrs50"),
    ("regnet", "regnetx_002"), ("regnet", "regnety_002"), ("regnet", "regnetz_005"),
    ("byobnet", "resnext26ts"), ("byobnet", "seresnext26ts"), ("byobnet", "gcresnet33ts"),
    ("byobnet", "bat_resnext26ts"),
    ("repvgg", "repvgg_a0"),
    ("mobileone", "mobileone_s0"),
    ("gernet", "gernet_s"),
    ("efficientnet", "efficientnet_b0"), ("efficientnet", "efficientnet_lite0"),
    ("efficientnet", "efficientnetv2_rw_t"), ("efficientnet", "mobilenet_edgetpu_v2_xs"),
    ("tf_efficientnet", "tf_efficientnet_b0"), ("tf_efficientnet", "tf_efficientnet_lite0"),
    ("tf_efficientnet", "tf_efficientnetv2_b0"),
    ("mobilenetv1", "mobilenetv1_100"),
    ("mobilenetv2", "mobilenetv2_035"),
    ("mobilenetv3", "mobilenetv3_small_050"),
    ("mobilenetv3", "tf_mobilenetv3_small_minimal_100"),
    ("mobilenetv4", "mobilenetv4_conv_small_035"), ("mobilenetv4", "mobilenetv4_conv_small"),
    ("mnasnet", "mnasnet_small"), ("mnasnet", "semnasnet_050"), ("mnasnet", "spnasnet_100"),
    ("fbnet", "fbnetc_100"), ("fbnet", "fbnetv3_b"),
    ("mixnet", "mixnet_s"), ("mixnet", "tf_mixnet_s"),
    ("hardcorenas", "hardcorenas_a"),
    ("lcnet", "lcnet_035"),
    ("tinynet", "tinynet_e"),
    ("ghostnet", "ghostnet_050"), ("ghostnet", "ghostnetv2_100"), ("ghostnet", "ghostnetv3_050"),
    ("repghostnet", "repghostnet_050"),
    ("hrnet", "hrnet_w18_small"),
    ("densenet", "densenet121"), ("densenet", "densenetblur121d"),
    ("dla", "dla34"), ("dla", "dla46_c"), ("dla", "dla46x_c"),
    ("dpn", "dpn48b"),
    ("vgg", "vgg11"), ("vgg", "vgg11_bn"),
    ("convnext", "convnext_atto"), ("convnext", "convnext_femto"),
    ("convnextv2", "convnextv2_atto"),
    ("cspnet", "cspresnet50"), ("cspnet", "cspdarknet53"), ("cspnet", "cspresnext50"),
    ("cspnet", "cs3darknet_focus_s"), ("cspnet", "cs3darknet_s"),
    ("darknet", "darknet17"),
    ("rexnet", "rexnet_100"), ("rexnet", "rexnetr_100"),
    ("selecsls", "selecsls42b"),
    ("tresnet", "tresnet_m"),
    ("vovnet", "ese_vovnet19b_dw"), ("vovnet", "vovnet39a"),
    ("inception", "inception_v3"), ("inception", "inception_v4"),
    ("inception", "inception_resnet_v2"),
    ("xception", "xception41"), ("xception", "legacy_xception"),
    ("nfnet", "nf_resnet26"), ("nfnet", "nf_regnet_b0"), ("nfnet", "eca_nfnet_l0"),
    ("nfnet", "nfnet_l0"),
    ("hgnet", "hgnet_tiny"), ("hgnet", "hgnetv2_b0"),
    ("fasternet", "fasternet_t0"),
    ("repvit", "repvit_m0_9"),
    ("starnet", "starnet_s050"),
    ("rdnet", "rdnet_tiny"),
    ("inception_next", "inception_next_atto"),
    ("efficientformer", "efficientformer_l1"),  # hybrid: conv stages, attention at the end
    ("fastvit", "fastvit_t8"),  # hybrid: RepMixer conv blocks
    ("edgenext", "edgenext_xx_small"),  # hybrid: conv encoders and transposed attention
    ("mobilevit", "mobilevit_xxs"),  # hybrid: inverted residuals and transformer blocks
    ("levit", "levit_128s"),  # transformer: expected to be named and kept
)


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


def one_line(exc: BaseException) -> str:
    """A one-line message: WalkError's own text, else 'Type: first line'."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, WalkError):
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


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


def plan_sizes(chain: Any, plan: str) -> dict[str, Any]:
    """Student vs teacher params and mults of the plan ``KIND:WIDTH`` (or its error)."""
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
            "seconds": round(time.perf_counter() - start, 2)}


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


def commit() -> str:
    """The current git commit, or 'uncommitted'."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True)
        return out.stdout.strip() or "uncommitted"
    except (OSError, subprocess.CalledProcessError):
        return "uncommitted"


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
            summary["plans"][spec] = {"planned": planned, "percent_planned": percent(planned),
                                      "smaller": fewer, "percent_smaller": percent(fewer)}
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
                     f"plans smaller (params and mults both below the teacher's): "
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
            "TIMM_SAMPLE of scripts/walk_coverage.py (smallest variant of each family, "
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
                       "would be bigger are kept. A plan error is shown in the params column.")]
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
                         "of the teacher's"))
    return "\n".join(lines) + "\n"


def model_plan(result: ModelResult, spec: str) -> dict[str, Any]:
    """One model's sizes (or error) for the plan ``spec``; {} if not planned."""
    if spec in result.plans:
        return result.plans[spec]
    return result.plan  # a report from before several plans: its one plan


def smaller(plan: dict[str, Any]) -> bool:
    """Whether a plan's student has fewer params and fewer mults than the teacher."""
    return bool(plan) and "error" not in plan and plan["params_ratio"] < 1 \
        and plan["mults_ratio"] < 1


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


def previous_results(args: argparse.Namespace) -> tuple[dict[str, ModelResult], float]:
    """--resume: the models of an interrupted run of the same zoo and plans, and its time."""
    if not args.json.exists():
        return {}, 0.0
    old = json.loads(args.json.read_text())
    if old.get("zoo", "torchvision") != args.zoo or old.get("plan", "") != args.plan:
        raise SystemExit(f"--resume: {args.json} is a run of another --zoo or --plan")
    done = {m["name"]: ModelResult(**m) for m in old.get("models", [])}
    return done, float(old.get("summary", {}).get("total_seconds", 0.0))


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
