"""The committed CIFAR-10 benchmark files show what the committed code computes from
their runs. A lane started from an older checkout rewrites them with its own
summary code; this finds a file left that way before it reaches a reader."""

import copy
import json
from pathlib import Path

import pytest
from bench_variants import HEADLINE_VARIANTS
from cifar10_results import plot_name, summarise_all
from cifar10_tables import markdown

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# the files scripts/bench_cifar10.py keeps writing (its --out stems); the archived
# cifar10-issue3-teacher keeps the render of its day, headed as an archive
STEMS = ("cifar10", "labels", "losses")


@pytest.mark.parametrize("stem", STEMS)
def test_committed_results_are_what_this_code_renders_from_their_runs(stem: str) -> None:
    out = BENCHMARKS / stem
    stored = json.loads(out.with_suffix(".json").read_text())
    fresh = summarise_all(copy.deepcopy(stored), HEADLINE_VARIANTS)
    fix = f"stale; rewrite it: python scripts/bench_cifar10.py --render --out benchmarks/{stem}"
    assert fresh == stored, f"{stem}.json's summaries are {fix}"
    plots = {entry["name"]: plot_name(out, entry["name"]) for entry in stored["pairs"]
             if out.with_name(plot_name(out, entry["name"])).is_file()}
    assert plots, f"no plot of {stem} is committed"
    assert markdown(fresh, plots, stem) == out.with_suffix(".md").read_text(), f"{stem}.md is {fix}"


def test_a_write_re_summarises_every_pair_not_only_its_own(tmp_path: Path) -> None:
    from cifar10_results import write_results

    def entry(name: str, accuracy: float) -> dict:
        run = {"accuracy": accuracy, "images": 9, "seconds": 1.0, "params": 5}
        return {"name": name, "kind": "compression", "command": "c", "commit": "x",
                "machine": "m", "data": "d", "budget_epochs": 1, "spec": {"width": 1},
                "student": {"params": 5, "mults": 5,
                            "latency_ms": {"batch1": 1, "batch64": 1}},
                "runs": {"scratch": {"0": run}}}

    out = tmp_path / "results"
    write_results(entry("a", 70.0), HEADLINE_VARIANTS, out)
    stored = json.loads(out.with_suffix(".json").read_text())
    stored["pairs"][0]["methods"]["scratch"]["accuracy"] = 99.0  # as an old lane's code might
    out.with_suffix(".json").write_text(json.dumps(stored))
    write_results(entry("b", 60.0), HEADLINE_VARIANTS, out)
    pairs = json.loads(out.with_suffix(".json").read_text())["pairs"]
    assert [p["methods"]["scratch"]["accuracy"] for p in pairs] == [70.0, 60.0]
    assert "| scratch | 70.0 |" in out.with_suffix(".md").read_text()


def test_render_refuses_a_results_file_that_is_not_there(tmp_path: Path) -> None:
    from cifar10_results import render

    with pytest.raises(SystemExit, match="does not exist"):
        render(tmp_path / "missing", HEADLINE_VARIANTS)
    assert not any(tmp_path.glob("missing.*"))  # no empty results made up in its place
