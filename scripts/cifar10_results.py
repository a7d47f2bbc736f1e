"""benchmarks/cifar10.json and .md: merging runs, the per-method summary, rendering.

Kept apart from scripts/bench_cifar10.py, which runs the methods, so the
results' schema (pairs -> runs by method and seed -> summary with gap_closed)
reads in one place. Every write re-summarises every pair and redraws the
Markdown, so the files always show what this code computes from their runs.
"""

import json
import statistics
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from bench_variants import float32_twin, headline_variant
from cifar10_tables import first_seed, markdown
from pair_teacher import counted_runs

from recast.files import atomic_write_text
from recast.precision import NO_BFLOAT16


def entry_for(results: dict, name: str) -> dict:
    """The pair ``name``'s entry in ``results``, added if it is not there yet."""
    for entry in results["pairs"]:
        if entry["name"] == name:
            return entry
    entry: dict = {"name": name}
    results["pairs"].append(entry)
    return entry


def summarise(entry: dict, headlines: Mapping[str, str]) -> None:
    """methods: mean/std over seeds, the pair's headline variant reported
    as 'recast'; runs that learned from another teacher than the pair's are left out."""
    methods, runs = {}, counted_runs(entry)
    main_variant = preset_variant(runs, headline_variant(headlines, entry["name"],
                                                         entry["kind"]))
    entry.pop("headline", None)  # set again below if the headline variant has runs
    for key, by_seed in runs.items():
        accs = [r["accuracy"] for r in by_seed.values()]
        summary = {"accuracy": round(statistics.mean(accs), 2),
                   "accuracy_std": round(statistics.stdev(accs), 2) if len(accs) > 1 else 0.0,
                   "seeds": len(accs),
                   "images_seen": next(iter(by_seed.values()))["images"],
                   "wall_s": round(statistics.mean(r["seconds"] for r in by_seed.values()), 1),
                   "params": next(iter(by_seed.values())).get("params")}
        methods[key] = summary
        if key == f"recast:{main_variant}":
            methods["recast"] = summary
            entry["headline"] = key
    # share of the scratch-to-teacher gap each method closes: (m - scratch) / (t - scratch)
    scratch, teacher = methods.get("scratch"), entry.get("teacher", {}).get("accuracy")
    for summary in methods.values():  # no gap when scratch training matches the teacher
        if scratch and teacher is not None and teacher > scratch["accuracy"]:
            summary["gap_closed"] = round((summary["accuracy"] - scratch["accuracy"])
                                          / (teacher - scratch["accuracy"]), 3)
    for key, by_seed in runs.items():
        ratio = wall_vs_scratch(by_seed, runs.get("scratch", {}))
        if ratio is not None:
            methods[key]["wall_vs_scratch"], methods[key]["wall_equal_load"] = ratio
    entry["methods"] = methods


def preset_variant(runs: Mapping[str, dict], headline: str) -> str:
    """The variant the `fast` preset ran as in these runs: the headline, or its float32
    twin where the headline never ran and every run of the twin says its CPU had no
    bfloat16 units (the preset's --teacher-precision auto settles float32 there)."""
    twin = runs.get(f"recast:{float32_twin(headline)}", {})
    if f"recast:{headline}" not in runs and twin and all(
            NO_BFLOAT16 in run.get("machine", "") for run in twin.values()):
        return float32_twin(headline)
    return headline


# mean loads closer than this count as equal (a lane alone reads about 1, each
# other busy thread adds about 1)
EQUAL_LOAD = 0.3


def wall_vs_scratch(by_seed: dict, scratch: dict) -> tuple[float, bool] | None:
    """Mean wall-time ratio to scratch over the seeds where both ran in one process of
    the script (same invocation id; records from before ids, same command and
    commit): wall times of separate runs on a shared machine do not compare. Where
    some of those pairs recorded equal loads, only they count, and the flag says so."""
    def run_of(record: dict) -> tuple:
        return (record.get("invocation"),) if "invocation" in record else \
            (record.get("command"), record.get("commit"))

    def equal_load(run: dict, other: dict) -> bool:
        loads = run.get("load"), other.get("load")
        return all(loads) and abs(loads[0]["mean"] - loads[1]["mean"]) <= EQUAL_LOAD

    pairs = [(run, scratch[seed]) for seed, run in by_seed.items()
             if seed in scratch and run.get("command") and run_of(run) == run_of(scratch[seed])]
    if not pairs:
        return None
    equal = [(run, other) for run, other in pairs if equal_load(run, other)]
    ratios = [run["seconds"] / other["seconds"] for run, other in equal or pairs]
    return round(statistics.mean(ratios), 2), bool(equal)


@contextmanager
def locked(out: Path, headlines: Mapping[str, str]) -> Iterator[dict]:
    """The results stored at ``out`` (.json), held under a lock while the caller changes
    them (runs may go in parallel lanes), then re-summarised (every pair, whoever wrote
    its runs) and saved with their Markdown: both drawn first, each written whole, so a
    failure or a kill leaves the old pair of files."""
    import fcntl

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = out.with_suffix(".json")
        results = json.loads(path.read_text()) if path.is_file() else {"pairs": []}
        yield results
        summarise_all(results, headlines)
        text = markdown(results, plot_curves(results, out), out.name)
        atomic_write_text(path, json.dumps(results, indent=1))
        atomic_write_text(out.with_suffix(".md"), text)


def summarise_all(results: dict, headlines: Mapping[str, str]) -> dict:
    """Every pair's summary recomputed from its runs by this code, whoever wrote them."""
    for entry in results["pairs"]:
        summarise(entry, headlines)
    return results


def write_results(entry: dict, headlines: Mapping[str, str], out: Path, title: str | None = None) -> None:
    """Merge this pair's runs into the file and re-summarise every pair.
    ``title`` (--title) heads the Markdown from now on."""
    with locked(out, headlines) as results:
        stored = entry_for(results, entry["name"])
        runs = stored.get("runs", {})
        for key, by_seed in entry["runs"].items():
            runs.setdefault(key, {}).update(by_seed)
        stored.update({k: v for k, v in entry.items() if k != "runs"})
        stored["runs"] = runs
        if title:
            results["title"] = title


def render(out: Path, headlines: Mapping[str, str], title: str | None = None) -> None:
    """Rewrite the summaries, the Markdown and the plots from the stored runs alone."""
    if not out.with_suffix(".json").is_file():
        raise SystemExit(f"--render: {out.with_suffix('.json')} does not exist; give the "
                         f"--out of an earlier run, e.g. benchmarks/cifar10")
    with locked(out, headlines) as results:
        if title:
            results["title"] = title


def plot_name(out: Path, pair: str) -> str:
    """The file a pair's curves go to, beside ``out``."""
    return f"{out.name}-{pair}.png"


def plot_curves(results: dict, out: Path) -> dict[str, str]:
    """Accuracy vs images seen, one PNG per pair (needs matplotlib: the bench extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    files = {}
    for entry in results["pairs"]:
        figure, axes = plt.subplots(figsize=(7, 4.5))
        for key, by_seed in sorted(counted_runs(entry).items()):
            curve = by_seed[first_seed(by_seed)].get("curve", [])
            axes.plot([p["images"] / 1000 for p in curve], [p["accuracy"] for p in curve],
                      marker=".", label=key)
        if "teacher" in entry:
            axes.axhline(entry["teacher"]["accuracy"], color="black", linestyle="--",
                         label="teacher")
        axes.set(xlabel="training images seen (thousands)", ylabel="test accuracy (%)",
                 title=f"{entry['name']}: accuracy vs images seen (lowest seed)",
                 ylim=(40, None))
        axes.legend(fontsize=8)
        path = out.with_name(plot_name(out, entry["name"]))
        figure.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(figure)
        files[entry["name"]] = path.name
    return files

