"""The run folder: what a recast writes, when a folder may be used, how a run resumes.

A run folder is self-contained and relocatable: run-args.json holds the run's
spec with paths inside the folder stored relative to it, so ``--resume DIR``
continues the run in DIR wherever DIR now is and writes nothing outside it.
"""

import json
import shutil
from pathlib import Path

from recast.errors import RecastError
from recast.files import atomic_write_text
from recast.runspec import RunSpec, differing

RUN_ARGS = "run-args.json"
# what a recast run writes into its folder: --force removes these and nothing else
RUN_FILES = (RUN_ARGS, "teacher.safetensors", "teacher-state.json", "student.safetensors",
             "student.json", "report.json", "report.md", "config.json", "synthetic.npz",
             "synthetic.json")
TEACHER_CHECKPOINTS = "teacher-checkpoint"  # a teacher the run is training, after each pass
RUN_FOLDERS = ("checkpoint", TEACHER_CHECKPOINTS, "plots", "tensorboard", "generations")
TRAINED_TEACHER = "teacher.safetensors"


def prepare_new(path: Path, force: bool = False, keep: Path | None = None) -> Path:
    """A folder for a new run; never overwrites silently.

    --force clears only a folder that holds a recast run, and only the run's
    own files; ``keep`` (the --teacher file, if it lives there) stays.
    """
    if path.exists() and not path.is_dir():
        raise RecastError(f"--out {path} is a file, not a folder; choose a new folder name")
    holds_files = path.exists() and any(path.iterdir())
    if holds_files and force:
        if not any((path / marker).exists() for marker in (RUN_ARGS, "report.json",
                                                            "student.json")):
            raise RecastError(f"--force: {path} does not hold a recast run, so nothing there "
                              f"is replaced; choose a new folder")
        for name in RUN_FILES:
            if keep is None or (path / name).resolve() != keep.resolve():
                (path / name).unlink(missing_ok=True)
        for folder in RUN_FOLDERS:
            shutil.rmtree(path / folder, ignore_errors=True)
    elif holds_files:
        raise RecastError(f"--out {path} already holds files; add --resume to continue the "
                          f"run there, --force to start it over (replaces its run files), or "
                          f"choose a new folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RecastError(f"--out {path} is not writable ({exc.strerror}); choose another "
                          f"folder") from exc
    return path


def save_spec(spec: RunSpec, folder: Path) -> None:
    """run-args.json: the spec, with a --teacher file inside the folder made relative."""
    data = spec.to_json()
    data["out"] = None  # the folder is wherever run-args.json is
    if spec.data_dir:
        data["data_dir"] = str(Path(spec.data_dir).resolve())
    if spec.teacher:
        teacher = Path(spec.teacher).resolve()
        inside = teacher.is_relative_to(folder.resolve())
        data["teacher"] = str(teacher.relative_to(folder.resolve())) if inside else str(teacher)
        data["teacher_inside_run"] = inside
    atomic_write_text(folder / RUN_ARGS, json.dumps(data, indent=2))


def resume_spec(folder: Path, given: dict) -> RunSpec:
    """The interrupted run in ``folder``, refusing flags that would change it."""
    if not (folder / RUN_ARGS).is_file():
        raise RecastError(f"--resume: {folder} holds no recast run to resume; drop --resume "
                          f"or give the folder of an interrupted run")
    if (folder / "report.json").is_file():
        raise RecastError(f"--resume: the run in {folder} has already finished "
                          f"(report.md is there); nothing to resume")
    try:
        data = json.loads((folder / RUN_ARGS).read_text())
        spec = RunSpec.from_json(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise RecastError(f"--resume: {folder / RUN_ARGS} is damaged ({exc}); start again with "
                          f"--force") from exc
    if data.get("teacher_inside_run"):
        spec.teacher = str(folder / data["teacher"])
    changed = differing(spec, given)
    if changed:
        raise RecastError(f"--resume continues a run with its own settings, but you also gave "
                          f"{'; '.join(changed)}: drop them, or start a new run in another "
                          f"--out")
    spec.out = str(folder)
    spec.quiet = bool(given.get("quiet", False))
    spec.device = given.get("device") or spec.device
    return spec
