"""benchmarks/cifar10.md: the tables, the goals of issue 14 and the readings, drawn
from a results dict whose summaries scripts/cifar10_results.py has computed.

Kept apart from the summary so that what a run measured and how it is shown
change in separate places.
"""

from bench_variants import PARTS
from pair_readings import WRITTEN_FROM, reading_lines
from pair_teacher import by_seed_order, counted_runs, split_runs
from recast.settings import step_images


def load_lines(entry: dict) -> list[str]:
    """The machine's load during each run that recorded it: what its wall time means."""
    loads = [f"{key} s{seed} {run['load']['mean']}" for key, by_seed in counted_runs(entry).items()
             for seed, run in by_seed_order(by_seed) if run.get("load")]
    if not loads:
        return []
    return ["", "Machine load during runs (mean 1-minute load average; a lane alone reads "
            "about 1, each other busy thread adds 1): " + ", ".join(loads)]


def same_size(method: dict, student_params: int) -> bool:
    """Whether a method's network has the student's params, within 5% (pruning to a
    width ratio gives another size)."""
    return abs((method.get("params") or 0) - student_params) <= 0.05 * student_params


def teacher_lines(entry: dict) -> list[str]:
    """Which runs the tables leave out as another teacher's, and which they count
    though nothing records their teacher."""
    lines, (teacher, _, others, unknown) = [], split_runs(entry)
    if others:
        lines += ["", f"Left out of the table, the goals and the curves: runs that learned "
                      f"from another teacher than this pair's [{teacher}] (a teacher trained "
                      f"again, or another file given with --teacher): {', '.join(others)}"]
    if unknown:
        lines += ["", f"Counted as if they learned from this pair's teacher, though nothing "
                      f"records theirs (runs made before commit 8f73473): {', '.join(unknown)}"]
    return lines


# methods that train the student's very network (hint: FitNets' hints from random
# weights); prune-kd joins them on a compression pair when its pruned net has the
# student's size (a pruned ResNet stays residual)
SAME_STUDENT = ("kd", "kd-mse", "scratch", "hint")


LOAD_NOTE = {True: " (equal recorded load)", False: " (load not recorded or unequal)"}


def goal_lines(entry: dict) -> list[str]:
    """Issue 14's goals for the pair, computed from its table, for the fast preset's
    recast and for the best recast variant: a point over the best alternative that
    trains the same student, 60% of the scratch-to-teacher gap, 1.2x scratch's wall
    time, three seeds."""
    methods, student = entry.get("methods", {}), entry["student"]["params"]
    alternatives = {k: m for k, m in methods.items() if k in SAME_STUDENT or (
        k == "prune-kd" and entry["kind"] == "compression" and same_size(m, student))}
    variants = {k: m for k, m in methods.items() if k.startswith("recast:")}
    if not alternatives or not variants:
        return []
    alt_key, alt = max(alternatives.items(), key=lambda kv: kv[1]["accuracy"])
    best_key = max(variants, key=lambda k: variants[k]["accuracy"])
    shown = [("recast (`fast` preset)", methods.get("recast")), (f"best variant: {best_key}",
                                                                variants[best_key])]
    shown = [(label, m) for label, m in shown if m is not None]
    if best_key == entry.get("headline"):  # the preset's variant is the best one
        shown = shown[:1]

    def mark(ok: bool) -> str:
        return "reached" if ok else "**missed**"

    # a lead over scratch alone (a table of wall-time runs) says nothing of the goal
    judged = any(k != "scratch" for k in alternatives)

    def cells(m: dict) -> list[str]:
        margin = round(m["accuracy"] - alt["accuracy"], 2)
        gap, wall = m.get("gap_closed"), m.get("wall_vs_scratch")
        return [f"{margin:+.2f}: {mark(margin >= 1.0)}" if judged else
                f"{margin:+.2f}: - (no kd or kd-mse run in this table)",
                f"{gap:.0%}: {mark(gap >= 0.6)}" if gap is not None else "- (no gap)",
                f"{wall}x{LOAD_NOTE[m.get('wall_equal_load', False)]}: {mark(wall <= 1.2)}"
                if wall is not None else "- (not measured)",
                f"{m['seeds']}: {mark(m['seeds'] >= 3)}"]

    rows = [f"vs the best alternative of the same student ({alt_key}, {alt['accuracy']}%, "
            f"{alt['seeds']} seed{'s' * (alt['seeds'] > 1)}), goal +1 point",
            "share of the scratch-to-teacher gap closed, goal 60%",
            "wall time vs scratch, same invocation, goal 1.2x", "seeds, goal 3"]
    lines = ["", "Goals (issue 14), computed from the table:", "",
             "| goal | " + " | ".join(label for label, _ in shown) + " |",
             "|---|" + "---|" * len(shown)]
    columns = [cells(m) for _, m in shown]
    lines += [f"| {row} | " + " | ".join(col[i] for col in columns) + " |"
              for i, row in enumerate(rows)]
    return lines


def first_seed(by_seed: dict) -> str:
    """The lowest seed a method ran: the run its curve and step figures show."""
    return min(by_seed, key=int)


def part_lines(entry: dict) -> list[str]:
    """What each part of the recipe adds: the variant with it against the one without,
    on the seeds both ran (a seed's data order and init are shared, so a difference on
    one seed is the part's, not the seed's), with their wall-time ratio."""
    runs, rows = counted_runs(entry), []
    for part, with_it, without in PARTS:
        a, b = runs.get(f"recast:{with_it}", {}), runs.get(f"recast:{without}", {})
        seeds = sorted(set(a) & set(b), key=int)
        if not seeds:
            continue
        change = sum(a[s]["accuracy"] - b[s]["accuracy"] for s in seeds) / len(seeds)
        wall = sum(a[s]["seconds"] / b[s]["seconds"] for s in seeds) / len(seeds)
        rows.append(f"| {part} | {with_it} vs {without} | {', '.join(seeds)} | "
                    f"{change:+.2f} | {wall:.2f}x |")
    if not rows:
        return []
    return ["", "What each part of the recipe adds, on the seeds both variants ran (the "
            "wall ratio compares separate runs, often under different loads: a rough "
            "guide only):", "",
            "| part | variants | seeds | accuracy change (points) | wall time ratio |",
            "|---|---|---|---:|---:|", *rows]


TITLE = "CIFAR-10: recasting vs KD vs scratch vs pruning + KD, equal budget"


def cost_lines(teacher: dict | None, student: dict) -> list[str]:
    """The teacher's and the student's size; a teacher not trained yet has no accuracy
    (a scratch run may come first) and no line."""
    t, s = teacher, student
    if not t:
        return ["- teacher: not trained yet",
                f"- student: {s['params']:,} params, {s['mults']:,} mults, latency b1/b64 "
                f"{s['latency_ms']['batch1']}/{s['latency_ms']['batch64']} ms"]
    return [f"- teacher: {t['accuracy']}%, {t['params']:,} params, {t['mults']:,} mults, "
            f"latency b1/b64 {t['latency_ms']['batch1']}/{t['latency_ms']['batch64']} ms",
            f"- student: {s['params']:,} params ({t['params'] / s['params']:.1f}x fewer), "
            f"{s['mults']:,} mults ({t['mults'] / s['mults']:.1f}x fewer), latency b1/b64 "
            f"{s['latency_ms']['batch1']}/{s['latency_ms']['batch64']} ms"]


def vs_teacher(method: dict, teacher: dict | None) -> str:
    return f"{method['accuracy'] - teacher['accuracy']:+.2f}" if teacher else "-"


def markdown(results: dict, plots: dict[str, str] | None = None, stem: str = "") -> str:
    """The tables; ``results["title"]`` (set with --title) heads them if present. The
    hand-written readings show only in the file ``stem`` they were written from."""
    lines = [f"# {results.get('title', TITLE)}", "",
             "Accuracies on the 10k test images of ../shared/data/cifar10 (lossy JPEG "
             "origin: compare methods, do not quote as standard CIFAR-10). Budget = "
             "training images seen by the student (epochs x 50k); teacher forwards are "
             "not counted as images but are in the wall time. Wall time: this machine, "
             "CPU.", ""]
    for entry in results["pairs"]:
        t, s = entry.get("teacher"), entry["student"]
        lines += [f"## {entry['name']} ({entry['kind']}){' [QUICK]' if entry.get('quick') else ''}",
                  "", f"- command: `{entry['command']}`", f"- commit: {entry['commit']}",
                  f"- machine: {entry['machine']}", f"- data: {entry['data']}",
                  f"- budget: {entry['budget_epochs']} epochs of training images",
                  *cost_lines(t, s), "",
                  "| method | accuracy (%) | std | seeds | images | wall (s) | wall vs scratch "
                  "(same invocation) | params | vs teacher | gap closed |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        unlike, unequal = [], []
        for key, m in sorted(entry.get("methods", {}).items(), key=lambda kv: -kv[1]["accuracy"]):
            params, wall = m.get("params"), m.get("wall_vs_scratch", "-")
            if params and not same_size(m, s["params"]):
                unlike.append(key)
            if key != "scratch" and "wall_vs_scratch" in m and not m.get("wall_equal_load"):
                unequal.append(key)
                wall = f"{wall} (+)"
            lines.append(f"| {key}{' (*)' if key in unlike else ''} | {m['accuracy']} | "
                         f"{m['accuracy_std']} | {m['seeds']} | {m['images_seen']:,} | "
                         f"{m['wall_s']} | {wall} | "
                         f"{f'{params:,}' if params else '-'} | "
                         f"{vs_teacher(m, t)} | "
                         f"{format(m['gap_closed'], '.0%') if 'gap_closed' in m else '-'} |")
        if unlike:
            lines += ["", f"(*) not the student's size ({', '.join(unlike)}): pruning to the "
                      f"width ratio {entry['spec']['width']} gives a network of another size "
                      f"than the recast student, so it does not compare at equal cost."]
        if unequal:
            lines += ["", f"(+) wall ratio of runs whose machine load was not recorded or "
                      f"unequal ({', '.join(unequal)}): a rough guide, not a goal figure."]
        readings = reading_lines(entry["name"]) if stem == WRITTEN_FROM else []
        lines += (goal_lines(entry) + part_lines(entry) + load_lines(entry)
                  + teacher_lines(entry) + readings)
        scratch = entry.get("methods", {}).get("scratch")
        if scratch and t and scratch["accuracy"] >= t["accuracy"]:
            lines += ["", f"Scratch training of the student ({scratch['accuracy']}%) matches "
                      f"or beats this teacher ({t['accuracy']}%): there is no gap to close, "
                      f"and distilling from it can only hold the student back."]
        lines += ["", "Accuracy vs images seen (each method's lowest seed):", ""]
        if plots and entry["name"] in plots:
            lines += [f"![accuracy vs images seen]({plots[entry['name']]})", ""]
        for key, by_seed in counted_runs(entry).items():
            seed = first_seed(by_seed)  # as the plot draws it
            run = by_seed[seed]
            points = ", ".join(f"{p['images'] // 1000}k: {p['accuracy']}" for p in run.get("curve", []))
            lines.append(f"- {key} (seed {seed}): {points}")
            if "pruning_ratio" in run:
                lines.append(f"  - L1 pruning ratio (Torch-Pruning): {run['pruning_ratio']}")
            if "step_seconds" in run:
                lines.append(f"  - step wall time by block index (s): {run['step_seconds']}")
                config = run.get("config", {})
                subset = step_images(config.get("block_training", ""),
                                     config.get("step_test_images", 0))
                on = f", on {subset} of the test images" if subset else ""
                lines.append(f"  - accuracy after each step (%{on}): {run['step_accuracy']}")
            if "step_loss" in run:
                lines.append(f"  - block loss at the end of each step: {run['step_loss']}")
            if any(run.get("step_fit_mse", [])):
                fits = ", ".join("-" if fit is None else f"{fit[0]:.3g} -> {fit[1]:.3g}"
                                 for fit in run["step_fit_mse"])
                what = "input convs re-solved, their output MSE summed" \
                    if run.get("config", {}).get("solve") == "input" \
                    else "closed-form fit, pre-activation MSE"
                lines.append(f"  - {what} before -> after: [{fits}]")
        lines.append("")
    return "\n".join(lines) + "\n"
