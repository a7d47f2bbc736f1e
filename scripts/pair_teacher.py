"""Which runs of a benchmark pair count: those that learned from the pair's teacher.

A pair's teacher is trained again when its cache is lost, and training is not
bit-reproducible, so one results file can hold runs distilled from two
teachers. The summary must not pool them: runs of a method that reads the
teacher count only when they recorded the pair's current teacher. Runs from
before teachers were recorded (up to commit 1aa4531) cannot be told apart: they
count, and the tables list them.
"""

from bench_variants import reads_teacher


def pair_teacher(entry: dict) -> str | None:
    """The fingerprint of the teacher the pair's numbers describe: the one stored with
    the pair, else the one the newest invocation recorded (every invocation that
    trains or loads a teacher rewrites the pair's teacher), else None."""
    stored = entry.get("teacher", {}).get("sha")
    if stored:
        return stored
    recorded = [(run.get("invocation", ""), run["teacher"]["sha"])
                for by_seed in entry.get("runs", {}).values() for run in by_seed.values()
                if run.get("teacher")]
    return max(recorded)[1] if recorded else None


def learned_from_another(key: str, run: dict, teacher: str | None) -> bool:
    """Whether a run distilled from a teacher other than the pair's (a teacher-free
    method, such as scratch, never did)."""
    recorded = run.get("teacher")
    return (teacher is not None and reads_teacher(key) and recorded is not None
            and recorded["sha"] != teacher)


def counted_runs(entry: dict) -> dict[str, dict[str, dict]]:
    """The pair's runs by method and seed, without those from another teacher."""
    teacher = pair_teacher(entry)
    counted = {key: {seed: run for seed, run in by_seed.items()
                     if not learned_from_another(key, run, teacher)}
               for key, by_seed in entry.get("runs", {}).items()}
    return {key: by_seed for key, by_seed in counted.items() if by_seed}


def left_out(entry: dict) -> list[str]:
    """'method sN [sha]' for each run the summary leaves out."""
    teacher = pair_teacher(entry)
    return [f"{key} s{seed} [{run['teacher']['sha']}]"
            for key, by_seed in entry.get("runs", {}).items()
            for seed, run in sorted(by_seed.items(), key=lambda kv: int(kv[0]))
            if learned_from_another(key, run, teacher)]


def unrecorded(entry: dict) -> list[str]:
    """'method sN' for each run of a teacher-reading method that recorded no teacher
    (counted as if it learned from the pair's)."""
    return [f"{key} s{seed}" for key, by_seed in entry.get("runs", {}).items()
            for seed, run in sorted(by_seed.items(), key=lambda kv: int(kv[0]))
            if reads_teacher(key) and "teacher" not in run]
