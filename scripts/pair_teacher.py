"""Which runs of a benchmark pair count: those that learned from the pair's teacher.

A pair's teacher is trained again when its cache is lost (training is not
bit-reproducible), or given as another file with --teacher, so one results file
can hold runs distilled from two teachers. The summary must not pool them: runs
of a method that reads the teacher count only when they learned from the pair's
current teacher. Runs made before teachers were recorded (commit 8f73473) count
when nothing says otherwise, and the tables list them.
"""

from typing import NamedTuple

from bench_variants import reads_teacher

# Runs that recorded no teacher, attributed by hand from benchmarks/cifar10-runs.md
# (pair -> teacher label -> "method sN"): on 2026-11-25 the ResNet-20 teacher of
# 2026-11-23 (79.28%, lost with its machine) was trained again as teacher B (79.22%,
# fingerprint da897ce753d0), and that session's runs used teacher B throughout.
NOTED: dict[str, dict[str, list[str]]] = {
    "resnet20-conv": {
        "lost teacher A (79.28%)": ["kd s0", "prune-kd s0", "recast:local-kd-sgd-lr02 s0",
                                    "recast:warm-kd-sgd-lr02 s0",
                                    "recast:warm-ce-sgd-lr02 s0"],
        "da897ce753d0": ["recast:solve-ce-sgd-lr02 s0", "recast:solve-ce-sgd-lr02 s1",
                         "recast:solve-kd-sgd-lr02 s0", "recast:solve-bn-ce-sgd-lr02 s0",
                         "recast:solve-mse-sgd-lr02 s0", "recast:solve-ce-sgd-lr01 s0",
                         "recast:solve-mse-sgd s0"],
    },
}


def by_seed_order(by_seed: dict) -> list[tuple[str, dict]]:
    """A method's (seed, run) pairs, seeds in numeric order."""
    return sorted(by_seed.items(), key=lambda kv: int(kv[0]))


def run_teacher(entry: dict, key: str, seed: str, run: dict) -> str | None:
    """The teacher a run learned from: its recorded fingerprint, else the one noted by
    hand, else None (unknown)."""
    if run.get("teacher"):
        return run["teacher"]["sha"]
    label = f"{key} s{seed}"
    return next((teacher for teacher, runs in NOTED.get(entry.get("name", ""), {}).items()
                 if label in runs), None)


def pair_teacher(entry: dict) -> str | None:
    """The fingerprint of the teacher the pair's numbers describe: the one its newest
    invocation recorded (a lane started earlier never outvotes a later one), or None
    when no run recorded one."""
    recorded = [(run.get("invocation") or "", run["teacher"]["sha"])
                for by_seed in entry.get("runs", {}).values() for run in by_seed.values()
                if run.get("teacher")]
    return max(recorded)[1] if recorded else None


class RunSplit(NamedTuple):
    """A pair's runs split by teacher, in one pass: what the summary counts, and the
    'method sN' labels of what it leaves out ('[teacher]' added) or counts unchecked."""
    teacher: str | None
    counted: dict[str, dict[str, dict]]
    left_out: list[str]
    unrecorded: list[str]


def split_runs(entry: dict) -> RunSplit:
    """Runs of a teacher-reading method that learned from another teacher than the
    pair's are left out (a teacher-free method, such as scratch, never did); those
    whose teacher nothing records are counted and named."""
    teacher = pair_teacher(entry)
    split = RunSplit(teacher, {}, [], [])
    for key, by_seed in entry.get("runs", {}).items():
        for seed, run in by_seed_order(by_seed):
            own = run_teacher(entry, key, seed, run) if reads_teacher(key) else teacher
            if teacher is not None and own is not None and own != teacher:
                split.left_out.append(f"{key} s{seed} [{own}]")
                continue
            split.counted.setdefault(key, {})[seed] = run
            if own is None and reads_teacher(key):
                split.unrecorded.append(f"{key} s{seed}")
    return split


def counted_runs(entry: dict) -> dict[str, dict[str, dict]]:
    """The pair's runs by method and seed, without those from another teacher."""
    return split_runs(entry).counted
