"""What the closed-form start leaves in each step's target, before any SGD.

For a benchmark pair's teacher, installs each recast step's target as
``--solve target`` does (recast/step_fit.py solve_step), then measures the
target's pre-activation MSE against the teacher in eval mode (as the fit sees
it) and in train mode (as training sees it) on the images it was fitted to,
the fitted conv's filter norm
against the same target before the fit, and the variance of conv1's outputs.
Also on images it was not fitted to (the next ones), and with ``--hidden
principal`` a fresh target's conv1 first gets principal directions
(``--solve-hidden principal``). Run from a checkout of any commit that has
solve_step to compare code versions; each run is stored under its pair, commit
and conv1 choice.

    python scripts/diagnose_fit.py --pair densenet40-basic \
        --teacher benchmarks/teachers/densenet40-basic-teacher-60ep.safetensors
"""

import argparse
import copy
import json
import platform
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_cifar10 import PAIRS  # noqa: E402
from recast.datasets import BatchLoader, load_data  # noqa: E402
from recast.models import build_model  # noqa: E402
from recast.plan import make_plan  # noqa: E402
from recast.result import code_commit  # noqa: E402
from recast.solve import preactivation  # noqa: E402
from recast.step_fit import calibration_images, solve_step  # noqa: E402
from recast.steps import SOLVE_IMAGES  # noqa: E402
from recast.surgery import StudentSurgery, run_blocks  # noqa: E402
from recast.teacher import load_teacher  # noqa: E402
from recast.walker import walk  # noqa: E402

OUT = ROOT / "benchmarks" / "fit-diagnosis"


def _basic_preactivation(block: nn.Module, x: Tensor) -> Tensor:
    hidden = F.relu(block.bn1(block.conv1(x)))
    return block.bn2(block.conv2(hidden)) + block.shortcut(x)


def _filter_norm(conv: nn.Conv2d) -> float:
    return float(conv.weight.detach().flatten(1).norm(dim=1).mean())


@torch.no_grad()
def diagnose(pair: str, teacher_file: Path, data_dir: str, images: int,
             hidden: str = "random") -> list[dict]:
    """One row per recast step of ``pair`` whose target is a basic block."""
    spec = PAIRS[pair]
    model = build_model(spec["model"], num_classes=10, width=spec["teacher_width"])
    teacher_model = load_teacher(model, teacher_file).eval()
    plan = make_plan(walk(teacher_model, (1, 3, 32, 32)), spec["target"], spec["width"])
    data = load_data("cifar10", data_dir, 2 * images, 1)
    both = calibration_images(
        BatchLoader(data.train, data.mean, data.std, 128, train=True, seed=0), 2 * images,
        torch.device("cpu"))
    calibration, held_out = both[:images], both[images:]
    if len(held_out) < images:
        raise SystemExit(f"diagnose_fit: the data has {len(both)} training images, fewer "
                         f"than the {2 * images} needed (fitted + held out); lower --images")
    teacher = nn.ModuleList(b.module for b in plan.chain.blocks).eval()
    steps = [s.block.index for s in plan.recast_steps()]
    torch.manual_seed(0)
    surgery = StudentSurgery(plan, "teacher", torch.device("cpu"), fit_steps=steps)
    rows = []
    for index in steps:
        warm, _ = surgery.install(index)
        target = surgery.blocks[index]
        block = target[0] if isinstance(target, nn.Sequential) else target
        if not hasattr(block, "conv2"):
            continue
        norm_before = _filter_norm(block.conv2)
        fit = solve_step(surgery, teacher, index, index, calibration, "target",
                         **({"fresh": not warm} if hidden == "principal" else {}))
        s_in = run_blocks(surgery.blocks.eval(), calibration, 0, index - 1)
        expected = preactivation(teacher[index], run_blocks(teacher, calibration, 0, index - 1))
        kept = surgery.kept.get(index)
        expected = expected if kept is None else expected[:, kept]
        in_train = copy.deepcopy(block).train()
        held_in = run_blocks(surgery.blocks.eval(), held_out, 0, index - 1)
        held_expected = preactivation(teacher[index], run_blocks(teacher, held_out, 0, index - 1))
        held_expected = held_expected if kept is None else held_expected[:, kept]
        rows.append({
            "step": index, "teacher_variance": float(expected.var()),
            "conv1_output_variance": float(block.conv1(s_in).transpose(0, 1).flatten(1)
                                           .var(dim=1).mean()),
            "mse_before": fit.get("mse_before"),
            "mse_eval": float(F.mse_loss(_basic_preactivation(block.eval(), s_in), expected)),
            "mse_train": float(F.mse_loss(_basic_preactivation(in_train, s_in), expected)),
            "mse_train_held_out": float(F.mse_loss(
                _basic_preactivation(copy.deepcopy(block).train(), held_in), held_expected)),
            "mse_eval_held_out": float(F.mse_loss(_basic_preactivation(block.eval(), held_in),
                                                  held_expected)),
            "conv2_norm_ratio": _filter_norm(block.conv2) / norm_before,
            # a dense block passes its input through: those kept channels are the input's
            "kept_input_channels": None if kept is None or plan.steps[index].block.kind != "dense"
            else f"{int((kept < plan.steps[index].block.in_channels).sum())} of {len(kept)}"})
    return rows


def markdown(results: dict) -> str:
    lines = ["# What the closed-form start leaves in each basic target, before any SGD", "",
             "Written by `scripts/diagnose_fit.py` (its docstring says what each column "
             "measures); one table per pair and commit of the code measured.", ""]
    for key, entry in sorted(results.items()):
        lines += [f"## {key}", "", f"`{entry['command']}` on {entry['machine']}, "
                  f"{entry['images']} calibration images.", "",
                  "| step | conv1 output var | MSE before fit | MSE eval | MSE train | "
                  "MSE eval, held out | MSE train, held out | teacher var | "
                  "conv2 norm / before | kept input channels |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in entry["rows"]:
            before = "-" if r["mse_before"] is None else f"{r['mse_before']:.3f}"
            held = [r.get(k) for k in ("mse_eval_held_out", "mse_train_held_out")]
            held = " | ".join("-" if h is None else f"{h:.3f}" for h in held)  # absent: older
            lines.append(f"| {r['step']} | {r['conv1_output_variance']:.3f} | {before} | "
                         f"{r['mse_eval']:.3f} | {r['mse_train']:.3f} | {held} | "
                         f"{r['teacher_variance']:.3f} | {r['conv2_norm_ratio']:.2f} | "
                         f"{r['kept_input_channels'] or '-'} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", choices=sorted(PAIRS), required=True)
    parser.add_argument("--teacher", type=Path, required=True, help="the pair's teacher")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared/data/cifar10"))
    parser.add_argument("--images", type=int, default=SOLVE_IMAGES,
                        help="calibration images, fitted and measured on (default: as "
                             "a recast step fits)")
    parser.add_argument("--hidden", choices=("random", "principal"), default="random",
                        help="a fresh basic target's conv1: as built, or the principal "
                             "directions of what its residual path must add")
    parser.add_argument("--out", type=Path, default=OUT, help="path stem for .json and .md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    commit = code_commit(short=True) or "unknown"
    entry = {"command": " ".join(["python", "scripts/diagnose_fit.py", *sys.argv[1:]]),
             "machine": f"{platform.machine()}, torch {torch.__version__}",
             "images": args.images,
             "rows": diagnose(args.pair, args.teacher, args.data_dir, args.images,
                              args.hidden)}
    path = args.out.with_suffix(".json")
    results = json.loads(path.read_text()) if path.is_file() else {}
    key = f"{args.pair} at {commit}" + (", principal conv1" if args.hidden == "principal"
                                         else "")
    results[key] = entry
    path.write_text(json.dumps(results, indent=1))
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown({key: entry}))


if __name__ == "__main__":
    main()
