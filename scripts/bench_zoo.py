"""Short real recasts of the models users bring, end to end through the CLI.

Each model (torchvision by name, timm as ``timm/NAME`` when installed) is
trained briefly as a teacher on a 64x64 ImageFolder made from the shared
CIFAR-10 sample, then recast with the smoke preset into the target kind its
users deploy. It shows that the whole job runs on these architectures and what
the student costs; the accuracies are those of minutes of CPU training, not of
the architectures.

    python scripts/bench_zoo.py                    # every model below
    python scripts/bench_zoo.py --models efficientnet_b0:mbconv:0.5
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recast.result import code_commit  # noqa: E402

SAMPLE = ROOT.parent / "shared" / "data" / "cifar10-small"

# model:target:width, the smallest member of each family
MODELS = [
    "mobilenet_v3_small:mbconv:0.5", "efficientnet_b0:mbconv:0.5", "mnasnet0_5:dwconv:0.5",
    "regnet_x_400mf:dwconv:0.5", "shufflenet_v2_x0_5:dwconv:0.5", "squeezenet1_1:dwconv:0.5",
    "googlenet:dwconv:0.5", "densenet121:dense:0.5", "convnext_tiny:dwconv:0.5",
    "resnet50:mbconv:0.5", "resnet18:conv:0.5", "timm/resnet10t:dwconv:0.5",
    "timm/mobilenetv3_small_050:mbconv:0.5",
]


def image_folder(out: Path, size: int) -> Path:
    """train/ and test/ of class subfolders of PNGs, the sample upsampled to size x size."""
    for split in ("train", "test"):
        arrays = np.load(next(SAMPLE.glob(f"*{split}*.npz")))
        for i, (x, y) in enumerate(zip(arrays["x"], arrays["y"])):
            folder = out / split / f"class{int(y)}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x).resize((size, size), Image.BILINEAR).save(folder / f"{i}.png")
    return out


def run(model: str, target: str, width: str, data: Path, work: Path, args) -> dict:
    out = work / model.replace("/", "_")
    command = [sys.executable, "-m", "recast", model, "--data-dir", str(data), "--target",
               target, "--width", width, "--preset", "smoke", "--teacher-epochs",
               str(args.teacher_epochs), "--limit-train", str(args.limit_train), "--quiet",
               "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    row = {"model": model, "target": target, "width": float(width), "exit": done.returncode,
           "seconds": round(time.perf_counter() - started, 1),
           "command": " ".join(["recast", *command[3:-2]])}
    if done.returncode != 0:
        row["error"] = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return row
    report = json.loads((out / "report.json").read_text())
    for side in ("teacher", "student"):
        row[side] = {k: report[side].get(k) for k in ("params", "mults", "accuracy")}
    row["ratio"] = {k: report["ratio"][k] for k in ("params", "mults")}
    row["recast"] = sum(1 for b in report["blocks"] if b["recast"])
    row["kept"] = sum(1 for b in report["blocks"] if b.get("kept_reason"))
    row["from_scratch"] = sum(1 for b in report["blocks"]
                              if b.get("step") and not b["step"]["warm_start"])
    return row


def markdown(result: dict) -> str:
    lines = [
        "# Short real recasts of the models users bring", "",
        f"- command: `{result['command']}`", f"- commit: {result['commit']}",
        f"- machine: {result['machine']}", f"- data: {result['data']}", "",
        "Each row: the teacher trained for a few epochs on the 64x64 sample, then "
        "`recast MODEL --preset smoke` (0.1 epochs per block step, 0.25 fine-tune). "
        "Accuracies are those of minutes of CPU training on 1,000 images: they show the job "
        "runs and what the student costs, not what the architecture can reach.", "",
        "| model | target | exit | teacher params | student params | params ratio "
        "| mults ratio | recast / kept / from scratch | teacher acc (%) | student acc (%) "
        "| wall (s) | commit |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        if r["exit"] != 0:
            lines.append(f"| {r['model']} | {r['target']} {r['width']} | {r['exit']} | "
                         f"{r['error']} | | | | | | | {r['seconds']} | "
                         f"{r.get('commit', result['commit'])} |")
            continue
        t, s = r["teacher"], r["student"]
        lines.append(
            f"| {r['model']} | {r['target']} {r['width']} | 0 | {t['params']:,} | "
            f"{s['params']:,} | {r['ratio']['params']}x | {r['ratio']['mults']}x | "
            f"{r['recast']} / {r['kept']} / {r['from_scratch']} | {t['accuracy']} | "
            f"{s['accuracy']} | {r['seconds']} | {r.get('commit', result['commit'])} |")
    ok = sum(r["exit"] == 0 for r in result["rows"])
    smaller = sum(r["exit"] == 0 and r["ratio"]["params"] > 1 and r["ratio"]["mults"] > 1
                  for r in result["rows"])
    lines += ["", f"{ok} of {len(result['rows'])} finished; {smaller} gave a student with "
              f"fewer params and fewer mults than its teacher."]
    return "\n".join(lines) + "\n"


def _merged(old: dict, result: dict) -> dict:
    """``result``'s rows in place of the same models' rows of ``old`` (an earlier
    run's file); each row keeps the commit it was made with."""
    old = json.loads(json.dumps(old))
    for row in old["rows"]:
        row.setdefault("commit", old["commit"])
    new = {r["model"]: dict(r, commit=result["commit"]) for r in result["rows"]}
    rows = [new.pop(r["model"], r) for r in old["rows"]] + list(new.values())
    merged = dict(result, rows=rows, command=f"{old['command']}; then {result['command']}",
                  commit=f"{old['commit']}, then {result['commit']}")
    merged["rows_made_here"] = [r["model"] for r in result["rows"]]
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="model:target:width,...")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--limit-train", type=int, default=1000)
    parser.add_argument("--teacher-epochs", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "zoo"))
    parser.add_argument("--merge", action="store_true",
                        help="replace these models' rows in an existing --out, keep the others")
    args = parser.parse_args()
    previous = Path(args.out).with_suffix(".json")
    base = json.loads(previous.read_text()) if args.merge and previous.is_file() else None
    commit = code_commit(short=True)
    result = {"command": " ".join(["python", "scripts/bench_zoo.py", *sys.argv[1:]]),
              "commit": commit, "machine": f"{platform.machine()}, {args.threads} threads, "
              f"torch {torch.__version__}", "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = image_folder(Path(tmp) / "images", args.size)
        result["data"] = (f"{SAMPLE} as a {args.size}x{args.size} ImageFolder, first "
                          f"{args.limit_train} train / all 1,000 test images")
        for item in args.models.split(","):
            model, target, width = item.split(":")
            print(f"{model} -> {target} {width} ...", flush=True)
            row = run(model, target, width, data, Path(tmp), args)
            print(f"  exit {row['exit']} in {row['seconds']} s "
                  f"{row.get('error') or row.get('ratio')}", flush=True)
            result["rows"].append(row)
            written = _merged(base, result) if base else result
            Path(args.out).with_suffix(".json").write_text(json.dumps(written, indent=1))
            Path(args.out).with_suffix(".md").write_text(markdown(written))


if __name__ == "__main__":
    main()
