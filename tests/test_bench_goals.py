"""scripts/cifar10_results.py: issue 14's goals are computed from a pair's table,
against the best alternative that trains the same student."""

import json

import pytest
from bench_variants import headline_variant
from cifar10_results import summarise
from cifar10_tables import goal_lines, load_lines, markdown, teacher_lines

# the variant reported as "recast" on either kind of pair in these made-up entries
HEADLINES = {"compression": "warm-ce-sgd-lr02", "transformation": "warm-ce-sgd-lr02"}


def _run(accuracy: float, params: int = 1000, seconds: float = 10.0) -> dict:
    return {"accuracy": accuracy, "images": 900, "seconds": seconds, "params": params,
            "command": "c", "invocation": "i"}


def _entry(kind: str, prune_params: int) -> dict:
    entry = {"name": "pair", "kind": kind, "teacher": {"accuracy": 80.0},
             "student": {"params": 1000},
             "runs": {"scratch": {"0": _run(70.0)}, "kd-mse": {"0": _run(72.0)},
                      "prune-kd": {"0": _run(79.0, prune_params)},
                      "recast:warm-ce-sgd-lr02": {"0": _run(77.0, seconds=11.0)},
                      "recast:solve": {"0": _run(74.0), "1": _run(74.0), "2": _run(74.0)}}}
    summarise(entry, HEADLINES)
    return entry


def _student() -> dict:
    return {"params": 1000, "mults": 5000, "latency_ms": {"batch1": 1.0, "batch64": 9.0}}


def _cells(lines: list[str], goal: str) -> list[str]:
    row = next(line for line in lines if line.startswith(f"| {goal}"))
    return [cell.strip() for cell in row.strip("|").split("|")][1:]


def test_a_transformation_pair_never_counts_the_residual_pruned_net() -> None:
    # as read back from the results file, where "recast" is a copy of its variant's row
    lines = goal_lines(json.loads(json.dumps(_entry("transformation", prune_params=1000))))
    assert any("(kd-mse, 72.0%, 1 seed)" in line for line in lines)
    assert _cells(lines, "vs the best") == ["+5.00: reached"]  # the preset is the best
    assert _cells(lines, "share of the") == ["70%: reached"]
    assert _cells(lines, "wall time") == ["1.1x (load not recorded or unequal): reached"]
    assert _cells(lines, "seeds") == ["1: **missed**"]


@pytest.mark.parametrize("params, against", [(1020, "prune-kd"), (2000, "kd-mse")])
def test_a_compression_pair_counts_pruning_only_at_the_students_size(params, against):
    lines = goal_lines(_entry("compression", prune_params=params))
    assert any(f"({against}, " in line for line in lines)
    assert _cells(lines, "vs the best")[0].endswith(
        "**missed**" if against == "prune-kd" else "reached")


def _teacher(sha: str, when: str = "20261126T000000-1") -> dict:
    return {"teacher": {"accuracy": 80.0, "sha": sha}, "invocation": when}


def test_runs_that_learned_from_another_teacher_are_left_out_of_every_table() -> None:
    # the WRN pair's teacher was trained again: its kd-mse run from the first teacher
    # must not be pooled with recast's runs from the second
    entry = _entry("compression", prune_params=1000)
    entry["runs"]["kd-mse"]["1"] = dict(_run(79.0), **_teacher("old", "20261101T000000-1"),
                                        load={"mean": 9.9, "max": 9.9, "samples": 3},
                                        curve=[{"images": 900, "accuracy": 79.0}])
    entry["runs"]["kd-mse"]["0"].update(_teacher("new"))
    entry["runs"]["scratch"]["0"].update(_teacher("old", "20261101T000000-1"))
    entry["runs"]["recast:warm-ce-sgd-lr02"]["1"] = dict(_run(60.0), **_teacher("old", "2026110"))
    entry["runs"]["recast:solve-ce-sgd-lr02"] = {"1": _run(61.0)}  # no teacher recorded
    summarise(entry, HEADLINES)
    assert entry["methods"]["kd-mse"]["accuracy"] == 72.0  # seed 1 left out
    assert entry["methods"]["kd-mse"]["seeds"] == 1
    assert entry["methods"]["scratch"]["seeds"] == 1  # scratch never reads a teacher
    text = "\n".join(teacher_lines(entry))
    assert "this pair's [new]" in text
    assert ": kd-mse s1 [old], recast:warm-ce-sgd-lr02 s1 [old]" in text
    assert "records theirs (runs made before commit 8f73473): prune-kd s0" in text
    assert "recast:solve-ce-sgd-lr02 s1" in text.split("records theirs")[1]
    assert "9.9" not in "\n".join(load_lines(entry))
    from cifar10_tables import part_lines
    # solve vs warm on seed 1 would compare 61.0 with the other teacher's 60.0
    assert part_lines(entry) == []


def test_the_newest_invocation_s_teacher_is_the_pair_s_and_hand_notes_count() -> None:
    from pair_teacher import NOTED, counted_runs, pair_teacher

    entry = {"name": "pair", "runs": {"kd": {
        "0": dict(_run(70.0), **_teacher("first", "20261101T000000-1")),
        "1": dict(_run(71.0), **_teacher("second", "20261126T000000-2")),
        "2": dict(_run(72.0), teacher=None, invocation=None)}}}
    assert pair_teacher(entry) == "second"
    assert sorted(counted_runs(entry)["kd"]) == ["1", "2"]  # 2: nothing says otherwise
    assert pair_teacher({"name": "pair", "runs": {"kd": {"0": _run(70.0)}}}) is None
    NOTED["pair"] = {"first": ["kd s2"]}  # a run known from the records' story
    try:
        assert list(counted_runs(entry)["kd"]) == ["1"]
    finally:
        del NOTED["pair"]


def test_a_pair_whose_teacher_is_not_trained_yet_renders_its_scratch_rows() -> None:
    # a scratch run may come first: it plans from the architecture alone
    entry = {"name": "pair", "kind": "transformation", "command": "c", "commit": "x",
             "machine": "m", "data": "d", "budget_epochs": 18.0, "spec": {"width": 1.0},
             "student": _student(), "runs": {"scratch": {"0": _run(70.0)}}}
    summarise(entry, HEADLINES)
    text = markdown({"pairs": [entry]})
    assert "- teacher: not trained yet" in text
    assert "| scratch | 70.0 | 0.0 | 1 | 900 | 10.0 | 1.0 | 1,000 | - | - |" in text
    assert "gap_closed" not in entry["methods"]["scratch"]


def test_a_table_row_marks_a_wall_ratio_whose_runs_ran_under_unequal_load() -> None:
    entry = {"name": "pair", "kind": "transformation", "command": "c", "commit": "x",
             "machine": "m", "data": "d", "budget_epochs": 18.0, "spec": {"width": 1.0},
             "student": _student(),
             "runs": {"scratch": {"0": _run(70.0)}, "kd": {"0": _run(71.0, seconds=20.0)},
                      "recast:warm-ce-sgd-lr02": {"0": _run(72.0, seconds=11.0)}}}
    for key, load in (("scratch", 1.0), ("kd", 2.0), ("recast:warm-ce-sgd-lr02", 1.1)):
        entry["runs"][key]["0"]["load"] = {"mean": load}
    summarise(entry, HEADLINES)
    text = markdown({"pairs": [entry]})
    assert "| kd | 71.0 | 0.0 | 1 | 900 | 20.0 | 2.0 (+) |" in text
    assert "| recast | 72.0 | 0.0 | 1 | 900 | 11.0 | 1.1 |" in text
    assert "| scratch | 70.0 | 0.0 | 1 | 900 | 10.0 | 1.0 |" in text
    assert "(+) wall ratio of runs whose machine load was not recorded or unequal (kd)" in text


def test_each_run_s_load_is_listed_under_the_table_and_a_missing_one_is_skipped() -> None:
    entry = _entry("transformation", prune_params=1000)
    entry["runs"]["scratch"]["0"]["load"] = {"mean": 1.02, "max": 1.3, "samples": 9}
    entry["runs"]["kd-mse"]["0"]["load"] = None  # a platform without a load average
    assert load_lines(entry)[-1].endswith("about 1, each other busy thread adds 1): "
                                          "scratch s0 1.02")
    entry["runs"]["scratch"]["0"].pop("load")
    assert load_lines(entry) == []


def test_the_load_sampler_reads_before_during_and_after_a_run() -> None:
    import time

    from machine_load import LoadSampler

    with LoadSampler(every=0.05) as load:
        time.sleep(0.2)
    summary = load.summary()
    assert summary["samples"] >= 3 and 0 <= summary["mean"] <= summary["max"]
    assert LoadSampler().summary() is None  # never sampled: no figure, not a crash


def test_hint_methods_are_known_by_their_loss_not_their_name() -> None:
    from bench_variants import uses_hints

    assert uses_hints("hint") and uses_hints("recast:loss-hint-ce")
    assert not any(uses_hints(k) for k in ("scratch", "kd", "prune-kd",
                                           "recast:warm-ce-sgd-lr02"))


def test_a_wall_ratio_under_recorded_equal_load_outweighs_one_under_unequal_load() -> None:
    from cifar10_results import wall_vs_scratch

    def run(seconds: float, load: float | None, invocation: str) -> dict:
        return {"seconds": seconds, "command": "c", "invocation": invocation,
                "load": {"mean": load, "max": load, "samples": 3} if load else None}

    recast = {"1": run(120.0, 2.0, "a"), "2": run(170.0, 2.0, "b"), "3": run(99.0, 1.0, "x")}
    scratch = {"1": run(100.0, 2.1, "a"), "2": run(100.0, 1.0, "b"), "3": run(10.0, 1.0, "y")}
    assert wall_vs_scratch(recast, scratch) == (1.2, True)  # seed 3: two invocations
    for seed in ("1", "2"):
        recast[seed]["load"] = None  # before loads were recorded: every pair counts
    assert wall_vs_scratch(recast, scratch) == (1.45, False)


def test_a_pair_s_reading_is_shown_as_written_by_hand_and_only_for_its_pair() -> None:
    from pair_readings import READINGS, reading_lines

    for name, reading in READINGS.items():
        line = reading_lines(name)[-1]
        assert "written by hand" in line and "not computed" in line
        assert reading["why"] in line and reading["next"] in line
    assert reading_lines("a pair nobody wrote about") == []


def test_what_a_part_adds_is_compared_on_the_seeds_both_variants_ran() -> None:
    from cifar10_tables import part_lines

    entry = {"runs": {
        "recast:warm-ce-sgd-lr02": {"0": _run(77.0, seconds=10.0), "1": _run(76.0)},
        "recast:solve-ce-sgd-lr02": {"0": _run(78.0, seconds=20.0), "2": _run(60.0)},
        "recast:solve-bn-ce-sgd-lr02": {"1": _run(90.0)}}}  # no seed shared with solve-ce
    lines = part_lines(entry)
    assert lines[-1] == ("| closed-form warm start (solve) | solve-ce-sgd-lr02 vs "
                         "warm-ce-sgd-lr02 | 0 | +1.00 | 2.00x |")
    assert not any("BN recalibration" in line for line in lines)
    assert part_lines({"runs": {"scratch": {"0": _run(70.0)}}}) == []


@pytest.mark.parametrize("machine, reported", [
    ("x86_64, AMD EPYC, no bfloat16 units", True), ("x86_64", False)])
def test_the_preset_s_float32_twin_is_recast_where_only_cpus_without_bfloat16_ran_it(
        machine, reported) -> None:
    # --teacher-precision auto settles float32 there: the twin is what the preset ran
    entry = {"name": "pair", "kind": "transformation", "teacher": {"accuracy": 80.0},
             "runs": {"scratch": {"0": _run(70.0)},
                      "recast:fast": {"0": dict(_run(75.0), machine=machine)}}}
    summarise(entry, {"transformation": "fast-bf16"})
    assert ("recast" in entry["methods"]) == reported
    assert entry.get("headline") == ("recast:fast" if reported else None)
    entry["runs"]["recast:fast-bf16"] = {"0": _run(76.0)}  # the headline itself ran
    summarise(entry, {"transformation": "fast-bf16"})
    assert entry["methods"]["recast"]["accuracy"] == 76.0


def test_the_benchmark_runs_the_float32_twin_as_recast_on_a_cpu_without_bfloat16() -> None:
    headlines = {"transformation": "fast-bf16", "compression": "ce"}
    assert headline_variant(headlines, "pair", "transformation", False) == "fast"
    assert headline_variant(headlines, "pair", "transformation", True) == "fast-bf16"
    assert headline_variant(headlines, "pair", "compression", False) == "ce"


def test_a_lead_over_scratch_alone_is_not_judged_against_the_goal() -> None:
    # a table of wall-time runs (scratch and the preset) has no KD baseline to beat
    entry = {"name": "pair", "kind": "transformation", "teacher": {"accuracy": 80.0},
             "student": {"params": 1000},
             "runs": {"scratch": {"0": _run(70.0)},
                      "recast:warm-ce-sgd-lr02": {"0": _run(77.0, seconds=11.0)}}}
    summarise(entry, HEADLINES)
    assert _cells(goal_lines(entry), "vs the best") == [
        "+7.00: - (no kd or kd-mse run in this table)"]


def test_a_lead_over_pruning_alone_is_judged_on_a_compression_pair() -> None:
    # prune+KD learns from the teacher too: a point over it is the goal's lead
    entry = {"name": "pair", "kind": "compression", "teacher": {"accuracy": 80.0},
             "student": {"params": 1000},
             "runs": {"scratch": {"0": _run(70.0)}, "prune-kd": {"0": _run(75.0)},
                      "recast:warm-ce-sgd-lr02": {"0": _run(77.0, seconds=11.0)}}}
    summarise(entry, HEADLINES)
    assert _cells(goal_lines(entry), "vs the best") == ["+2.00: reached"]
