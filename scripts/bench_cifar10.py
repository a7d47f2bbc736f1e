"""Recasting vs KD vs scratch vs pruning+KD on real CIFAR-10, at equal budget.

Every method trains the same student architecture (the recast plan's) on the
same data and augmentation for the same number of training images; wall time
is reported beside accuracy. Results merge into benchmarks/cifar10.json (one
entry per pair, method and seed) and benchmarks/cifar10.md is rewritten from
it, so partial runs accumulate.

    python scripts/bench_cifar10.py --pair vgg16-conv --methods scratch,kd
    python scripts/bench_cifar10.py --quick        # < 10 minutes, small subsets
"""

import argparse
import copy
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recast.result import code_commit, machine  # noqa: E402
from recast.baselines import fresh_student, teacher_chain, train_student  # noqa: E402
from recast.hints import hint_blocks  # noqa: E402
from recast.counting import count_costs  # noqa: E402
from recast.datasets import BatchLoader, load_data  # noqa: E402
from recast.engine import Recaster  # noqa: E402
from recast.latency import measure_latency_ms  # noqa: E402
from recast.models import build_model  # noqa: E402
from recast.plan import make_plan  # noqa: E402
from recast.precision import has_fast_bfloat16  # noqa: E402
from recast.progress import Progress  # noqa: E402
from recast.settings import RecastConfig  # noqa: E402
from recast.teacher import load_teacher  # noqa: E402
from recast.teacher_checkpoint import TeacherCheckpoints  # noqa: E402
from recast.training import evaluate  # noqa: E402
from recast.walker import walk  # noqa: E402

# scripts/ is on the path when this file runs
from cifar10_results import entry_for, render, write_results  # noqa: E402
from machine_load import LoadSampler  # noqa: E402
from prune_baseline import run_prune_kd  # noqa: E402
from bench_variants import (HEADLINE_VARIANTS, VARIANTS, headline_variant,  # noqa: E402
                            reads_teacher, uses_hints)

PAIRS: dict[str, dict[str, Any]] = {
    "vgg16-conv": dict(model="vgg16", teacher_width=0.25, target="conv", width=0.4,
                       kind="compression"),
    # CPU scale: ResNet-20 at half width (10M mults), WRN-16-4 at quarter width
    "resnet20-conv": dict(model="resnet20", teacher_width=0.5, target="conv", width=1.0,
                          kind="transformation"),
    # the paper's bottleneck -> conv transformation (its ResNet-83), at CPU scale
    # (quarter width: a half-width teacher trained too slowly here beside other runs)
    "resnet29-conv": dict(model="resnet29", teacher_width=0.25, target="conv", width=1.0,
                          kind="transformation"),
    # the paper's own transformation case (ResNet-56 -> a 29-layer plain net), where a
    # plain net is deep enough to train worse than its residual teacher (its half-width
    # teacher, 48 min of one core here, is kept in benchmarks/teachers/)
    "resnet56-conv": dict(model="resnet56", teacher_width=0.5, target="conv", width=1.0,
                          kind="transformation"),
    # the paper's dense -> basic case at CPU scale: each dense block of a half-growth
    # DenseNet-BC-40 becomes one basic block at 0.4 of its output width (at full width a
    # basic block outgrows a thin dense block): 1.4x fewer params, 1.8x fewer MACs
    "densenet40-basic": dict(model="densenet_bc_40_12", teacher_width=0.5, target="basic",
                             width=0.4, kind="transformation"),
    "wrn16_4-basic": dict(model="wrn_16_4", teacher_width=0.25, target="basic", width=0.5,
                          kind="compression"),
}

# pairs run only when named with --pair (a teacher too slow to train on this CPU as a
# matter of course)
NOT_BY_DEFAULT = ("resnet56-conv", "densenet40-basic")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", choices=sorted(PAIRS), action="append",
                        help="pair(s) to run (default: all but "
                             f"{', '.join(NOT_BY_DEFAULT)})")
    parser.add_argument("--methods", default="recast,kd,kd-mse,scratch,prune-kd",
                        help="comma list: recast, kd, kd-mse, scratch, hint, prune-kd")
    parser.add_argument("--variants", default=None,
                        help=f"recast variants to run ({', '.join(VARIANTS)}); default and "
                             f"reported as 'recast': the `fast` preset's on the pair, "
                             + ", ".join(f"{k}: {v}" for k, v in HEADLINE_VARIANTS.items()))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--budget", type=float, default=18.0, help="epochs of images")
    parser.add_argument("--teacher-epochs", type=float, default=15.0)
    parser.add_argument("--teacher", action="append", default=[],
                        help="PAIR=PATH: use this teacher state dict instead of training")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared/data/cifar10"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: 2k/1k images, budget 2, teacher 3 epochs")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "cifar10"),
                        help="path stem for .json and .md")
    parser.add_argument("--title", default=None,
                        help="the Markdown's heading (kept in the .json), e.g. for --out "
                             "benchmarks/labels")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite the .md (and plots) from the .json")
    return parser.parse_args()


def teacher_for(name: str, spec: dict, args, data, cache: Path,
                needed: bool) -> tuple[torch.nn.Module, bool]:
    """The pair's teacher and whether it is trained. Runs of teacher-free methods alone
    plan from the untrained architecture rather than wait for a teacher to train."""
    model = build_model(spec["model"], num_classes=data.num_classes,
                        width=spec["teacher_width"])
    given = dict(item.split("=", 1) for item in args.teacher)
    path = Path(given.get(name, cache / f"{name}-teacher{'-quick' if args.quick else ''}"
                          f".safetensors"))
    if not path.is_file() and not needed:
        return model.eval(), False
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "recast", "train", spec["model"], "--teacher-width",
                   str(spec["teacher_width"]), "--data-dir", args.data_dir, "--dataset",
                   "cifar10", "--epochs", str(args.teacher_epochs), "--quiet",
                   "--out", str(path)]
        if args.quick:
            command += ["--limit-train", "2000", "--limit-test", "1000"]
        if TeacherCheckpoints.beside(path).latest():  # a training stopped before: continue it
            command.append("--resume")
        print("training teacher:", " ".join(command), flush=True)
        threads = {"OMP_NUM_THREADS": str(args.threads)}
        subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, **threads})
    return load_teacher(model, path).eval(), True


def fingerprint(model: torch.nn.Module) -> str:
    """A short hash of the weights: which teacher a run learned from, whatever file held it."""
    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def run_recast(variant: str, plan, teacher, loaders, budget: float, seed: int,
               progress: Progress) -> dict[str, Any]:
    fraction, overrides = VARIANTS[variant]
    settings = dict(overrides)
    if fraction is not None:  # Recaster splits the budget (RecastConfig.split)
        settings.update(budget_epochs=budget, block_fraction=fraction)
    else:
        steps = len(plan.recast_steps())
        settings["finetune_epochs"] = max(0.0, budget - settings["epochs_per_block"] * steps)
    config = RecastConfig(seed=seed, batch_size=128, **settings)
    torch.manual_seed(seed)
    started = time.perf_counter()
    recaster = Recaster(copy.deepcopy(plan), config, torch.device("cpu"), progress)
    outcome = recaster.run(*loaders)
    step_seconds = [round(s.seconds, 1) for s in outcome.steps]
    return {"student": outcome.student, "accuracy": outcome.accuracy,
            "images": outcome.images,
            "seconds": time.perf_counter() - started, "curve": outcome.curve,
            "step_seconds": step_seconds, "config": recaster.config.to_json(),
            "step_accuracy": [round(s.accuracy, 2) for s in outcome.steps],
            "step_loss": [round(s.final_mse, 4) for s in outcome.steps],
            "step_fit_mse": [None if s.fit_mse_before is None else
                             [s.fit_mse_before, s.fit_mse_after] for s in outcome.steps]}


def run_method(key: str, plan, teacher, loaders, budget: float, spec: dict, seed: int,
               progress: Progress) -> dict[str, Any]:
    """One method's run on one seed: a recast variant, prune+KD, or a baseline."""
    if key.startswith("recast:"):
        return run_recast(key.split(":")[1], plan, teacher, loaders, budget, seed, progress)
    if key == "prune-kd":
        return run_prune_kd(plan, teacher, loaders, budget, spec["width"], seed, progress)
    torch.manual_seed(seed)
    curve: list = []
    result = train_student(key, fresh_student(plan), teacher_chain(plan), *loaders, budget,
                           torch.device("cpu"), progress, curve=curve)
    result["curve"] = curve
    return result


def main() -> None:
    args = parse_args()
    if args.render:
        render(Path(args.out), HEADLINE_VARIANTS, args.title)
        return
    torch.set_num_threads(args.threads)
    limit = (2000, 1000) if args.quick else (None, None)
    budget = 2.0 if args.quick else args.budget
    if args.quick:
        args.teacher_epochs = 3
    data = load_data("cifar10", args.data_dir, *limit)
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    out = Path(args.out)
    results: dict = {"pairs": []}
    command = " ".join(["python", "scripts/bench_cifar10.py", *sys.argv[1:]])
    code = code_commit(short=True) or "unknown"  # read now: HEAD may move while it runs
    invocation = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"  # pairs runs for wall ratios
    progress = Progress(quiet=True)
    here = machine()  # what the wall times depend on
    # baselines whose loss never runs the teacher (scratch) can run before it is trained
    needed = any(reads_teacher(m) for m in methods)
    for name in args.pair or [n for n in sorted(PAIRS) if n not in NOT_BY_DEFAULT]:
        spec = PAIRS[name]
        teacher, trained = teacher_for(name, spec, args, data, ROOT / "benchmarks" / "cache",
                                       needed)
        test = BatchLoader(data.test, data.mean, data.std, 500, train=False)
        teacher_id = {"accuracy": round(evaluate(teacher, test, torch.device("cpu")), 2),
                      "sha": fingerprint(teacher)} if trained else None
        plan = make_plan(walk(teacher, (1, 3, 32, 32)), spec["target"], spec["width"])
        hints = hint_blocks(plan)  # what a hint method would compare: none on most pairs
        example = torch.randn(1, 3, 32, 32)
        t_cost, _ = count_costs(teacher, example)
        student = plan.build_student()
        s_cost, _ = count_costs(student, example)
        entry = entry_for(results, name)
        entry.update({
            "name": name, "kind": spec["kind"], "command": command, "commit": code,
            "machine": f"{here}, {torch.get_num_threads()} threads, torch "
                       f"{torch.__version__}", "quick": args.quick,
            "data": f"{args.data_dir} ({len(data.train)} train / {len(data.test)} test)",
            "budget_epochs": budget, "spec": spec,
            "teacher": {"params": t_cost.params, "mults": t_cost.mults,
                        "latency_ms": {"batch1": round(measure_latency_ms(teacher, example.shape, 1), 3),
                                       "batch64": round(measure_latency_ms(teacher, example.shape, 64), 3)}},
            "student": {"params": s_cost.params, "mults": s_cost.mults,
                        "latency_ms": {"batch1": round(measure_latency_ms(student, example.shape, 1), 3),
                                       "batch64": round(measure_latency_ms(student, example.shape, 64), 3)}},
        })
        if trained:
            entry["teacher"]["accuracy"] = teacher_id["accuracy"]
        else:  # keep the accuracy of a teacher an earlier run recorded
            entry.pop("teacher")
        entry.setdefault("runs", {})
        variants = args.variants.split(",") if args.variants else \
            [headline_variant(HEADLINE_VARIANTS, name, spec["kind"],  # the preset's
                              has_fast_bfloat16(torch.device("cpu")))]
        for seed in seeds:
            train = BatchLoader(data.train, data.mean, data.std, 128, train=True, seed=seed)
            loaders = (train, test)
            for method in methods:
                keys = [f"recast:{v}" for v in variants] if method == "recast" else [method]
                for key in keys:
                    if uses_hints(key) and not hints:
                        print(f"[{name}] {key} skipped: no block of this student has its "
                              f"teacher block's output shape, so hints compare nothing",
                              flush=True)
                        continue
                    print(f"[{name}] {key} seed {seed} ...", flush=True)
                    with LoadSampler() as load:
                        result = run_method(key, plan, teacher, loaders, budget, spec, seed,
                                            progress)
                    record = {k: v for k, v in result.items() if k != "student"}
                    record["accuracy"] = round(record["accuracy"], 2)
                    record["seconds"] = round(record["seconds"], 1)
                    record["params"] = sum(p.numel() for p in result["student"].parameters())
                    record["command"], record["commit"] = command, code
                    record["invocation"], record["teacher"] = invocation, teacher_id
                    record["load"], record["machine"] = load.summary(), here
                    if uses_hints(key):  # a kept stem alone may be all a hint compares
                        record["hint_blocks"] = hints
                    entry["runs"].setdefault(key, {})[str(seed)] = record
                    print(f"[{name}] {key} seed {seed}: {record['accuracy']}% in "
                          f"{record['seconds']} s ({record['images']} images)", flush=True)
                    write_results(entry, HEADLINE_VARIANTS, out, args.title)


if __name__ == "__main__":
    main()
