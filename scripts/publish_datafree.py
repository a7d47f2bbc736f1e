"""benchmarks/data-free.md: the data-free recast beside the labelled and label-free ones.

Reads a finished ``recast ... --data synthetic`` run folder (its report.json,
config.json and synthetic.json) and the labels benchmark
(benchmarks/labels.json, from scripts/bench_cifar10.py with the labelled and
``nolabels`` variants on the same teacher), and writes data-free.md/.json.
Published data-free figures are quoted, not measured here, with their source.

    python scripts/publish_datafree.py /work/runs/vgg16-datafree --command "recast ..."
"""

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Quoted from the zju-vipa/Fast-Datafree README's table (ResNet-34 teacher at
# 95.70% -> ResNet-18 student on standard CIFAR-10, GPU schedules): not
# comparable in scale, shown for orientation.
PUBLISHED = [
    ("DeepInversion (Yin et al., CVPR 2020), ResNet-34 -> ResNet-18, 42 GPU-hours", 93.26),
    ("CMI (Fang et al., IJCAI 2021), ResNet-34 -> ResNet-18", 94.84),
    ("Fast-DFKD (Fang et al., AAAI 2022), ResNet-34 -> ResNet-18, 0.28 GPU-hours", 94.05),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--command", required=True, help="the exact command that ran")
    parser.add_argument("--labels", type=Path, default=ROOT / "benchmarks" / "labels.json")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data-free")
    args = parser.parse_args()
    report = json.loads((args.run_dir / "report.json").read_text())
    config = json.loads((args.run_dir / "config.json").read_text())
    synthetic = json.loads((args.run_dir / "synthetic.json").read_text())
    pairs = json.loads(args.labels.read_text())["pairs"] if args.labels.is_file() else []
    pair = next((p for p in pairs if p["name"] == "vgg16-conv"), None)  # this file's pair
    methods = pair["methods"] if pair else {}
    rows = [(name, methods[key]) for name, key in (
        ("recast, labelled (fast: CE fine-tune)", "recast:warm-ce-sgd-lr02"),
        ("recast, --labels none (KD on soft targets)", "recast:nolabels-kd-sgd-lr02"))
        if key in methods]
    losses = ROOT / "benchmarks" / "losses.json"  # the same teacher file, real images, labels
    if losses.is_file():
        kd = json.loads(losses.read_text())["pairs"][0]["methods"].get("recast:loss-kd")
        if kd:
            rows.append(("recast, labelled (Hinton-KD fine-tune; benchmarks/losses.md)", kd))
    data_free = {"accuracy": report["student"]["accuracy"], "images_seen": report["images_seen"],
                 "wall_s": report["recast_seconds"]}
    result = {"command": args.command, "commit": config["environment"].get("commit"),
              "teacher_accuracy": report["teacher"]["accuracy"], "synthetic": synthetic,
              "data_free": data_free, "real_data": dict(rows), "published": PUBLISHED,
              "labels_command": pair["command"] if pair else None}
    env = config["environment"]
    lines = [
        "# Data-free recasting: VGG-16 (width 0.25) -> conv 0.4 on CIFAR-10", "",
        f"- data-free run: `{args.command}` (commit {result['commit']})",
        "- labelled and label-free runs on the same teacher: " + (
            f"`{pair['command']}` (commit {pair['commit']})" if pair else
            "not yet measured (benchmarks/labels.json does not exist)"),
        f"- machine: {env['machine']}, {env['cpu_count']} threads; runs shared the 2 cores "
        f"with other benchmark runs, so wall times are rough",
        f"- teacher: {report['teacher']['accuracy']}% on the 10k real test images", "",
        "| training data | test accuracy (%) | training images seen | wall (s) |",
        "|---|---:|---:|---:|",
    ]
    for name, row in rows:
        lines.append(f"| {name}: the 50k real training images | {row['accuracy']} | "
                     f"{row['images_seen']:,} | {row['wall_s']} |")
    lines.append(f"| data-free (`--data synthetic`): {synthetic.get('images'):,} images "
                 f"synthesised from the teacher's BN statistics | {data_free['accuracy']} | "
                 f"{data_free['images_seen']:,} | {data_free['wall_s']} |")
    lines += ["", "Synthesis: " + ", ".join(f"{k} {v}" for k, v in synthetic.items()
                                               if not isinstance(v, (dict, list))) + ".", "",
              "Published data-free distillation on standard CIFAR-10 (quoted from the "
              "zju-vipa/Fast-Datafree README, teacher 95.70%, not measured here; a far larger teacher, GPU schedules and tens of "
              "thousands of synthetic images):", ""]
    lines += [f"- {name}: {accuracy}%" for name, accuracy in PUBLISHED]
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
