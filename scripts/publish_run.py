"""Copy a finished run's report into benchmarks/ with its provenance.

    python scripts/publish_run.py RUN_DIR --command "recast vgg16 ..." \\
        --out benchmarks/vgg16-conv-fast
"""

import argparse
import json
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--command", required=True, help="the exact command that ran")
    parser.add_argument("--out", type=Path, required=True, help="path stem for .md/.json")
    parser.add_argument("--note", default="", help="conditions a reader must know")
    args = parser.parse_args()
    config = json.loads((args.run_dir / "config.json").read_text())
    env = config["environment"]
    report = json.loads((args.run_dir / "report.json").read_text())
    header = [
        f"- command: `{args.command}`",
        f"- commit: {env.get('commit')}; recast {env['recast']}, torch {env['torch']}, "
        f"torchvision {env['torchvision']}, Python {env['python']}",
        f"- machine: {env['machine']}, {env['cpu_count']} threads, device {report['device']}",
        f"- wall time as the run recorded it: teacher training "
        f"{config['teacher'].get('seconds', 0)} s, recast + fine-tune (with evaluations "
        f"and the report) {report['recast_seconds']} s",
        f"- data: {report['data']['source']} ({report['data']['train']} train / "
        f"{report['data']['test']} test)",
    ]
    header += [f"- note: {args.note}", ""] if args.note else [""]
    body = (args.run_dir / "report.md").read_text().split("\n", 2)
    text = "\n".join([body[0], ""] + header + [body[2]])
    for plot in sorted((args.run_dir / "plots").glob("*.png")):  # beside the .md
        published = f"{args.out.name}-{plot.name}"
        shutil.copy(plot, args.out.with_name(published))
        text = text.replace(f"(plots/{plot.name})", f"({published})")
    lines = [line if not line.startswith("TensorBoard:") else
             "(TensorBoard events stayed in the run folder.)" for line in text.split("\n")]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    shutil.copy(args.run_dir / "report.json", args.out.with_suffix(".json"))


if __name__ == "__main__":
    main()
