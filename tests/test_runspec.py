"""recast/runspec.py and recast/runfolder.py: the job as data, saved and resumed."""

import json

import pytest

from recast.cli import CONFIG_FIELDS, build_parser
from recast.errors import RecastError
from recast.runfolder import RUN_ARGS, resume_spec, save_spec
from recast.runspec import RunSpec, differing, run_spec


def _spec(*argv: str) -> RunSpec:
    args = build_parser().parse_args(["run", "vgg11", "--target", "conv", *argv])
    return run_spec(args, CONFIG_FIELDS)


def test_a_spec_round_trips_through_json() -> None:
    spec = _spec("--width", "0.4", "--lr", "0.01")
    again = RunSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec and again.config.lr == 0.01


def test_only_result_changing_flags_count_as_differing() -> None:
    spec = _spec("--width", "0.4")
    assert differing(spec, {"width": 0.4, "quiet": True, "device": "cpu"}) == []
    assert differing(spec, {"width": 0.5}) == ["--width 0.5 (the run has 0.4)"]


def test_a_teacher_inside_the_run_is_saved_relative(tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "t.safetensors").write_bytes(b"")
    spec = _spec("--teacher", str(out / "t.safetensors"))
    save_spec(spec, out)
    moved = tmp_path / "moved"
    out.rename(moved)
    resumed = resume_spec(moved, {})
    assert resumed.teacher == str(moved / "t.safetensors") and resumed.out == str(moved)


def test_a_damaged_run_args_file_is_one_line(tmp_path) -> None:
    (tmp_path / RUN_ARGS).write_text("{not json")
    with pytest.raises(RecastError, match="damaged.*--force"):
        resume_spec(tmp_path, {})


def test_a_width_outside_the_range_is_refused() -> None:
    with pytest.raises(RecastError, match="outside \\(0, 1\\]"):
        _spec("--widths", "0.5,1.5")
