"""torchrun: two CPU processes (gloo) recast as one; a killed run resumes under torchrun."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import SMALL

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["vgg16", "--data-dir", str(SMALL), "--teacher-width", "0.25", "--target", "conv",
        "--width", "0.4", "--preset", "smoke", "--quiet", "--limit-train", "512",
        "--limit-test", "256"]


def _torchrun(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node", "2", "-m", "recast", *argv], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _kill_all(marker: str) -> None:
    """SIGKILL every process whose command line names ``marker``."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_text():
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


def _finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return out


def test_two_processes_write_exactly_one_run(tmp_path) -> None:
    out = tmp_path / "run"
    printed = _finish(_torchrun([*ARGS, "--out", str(out)]))
    assert printed.count("student") == 1  # rank 0 alone reports
    assert sorted(p.name for p in out.iterdir() if p.name not in ("plots", "tensorboard")) == [
        "config.json", "report.json", "report.md", "run-args.json", "student.json",
        "student.safetensors", "teacher.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2 and config["global_batch"] == 2 * 64


def test_a_killed_torchrun_run_resumes_under_torchrun(tmp_path) -> None:
    out = tmp_path / "run"
    slow = [*ARGS, "--teacher-epochs", "1", "--epochs-per-block", "1", "--finetune-epochs",
            "3", "--out", str(out)]
    process = _torchrun(slow)
    deadline = time.time() + 600
    while not (out / "checkpoint" / "latest.json").exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.time() < deadline
        time.sleep(0.2)
    _kill_all(str(out))  # the launcher and both workers, as a crash would
    process.communicate()
    assert not (out / "student.safetensors").exists()
    _finish(_torchrun(["--resume", str(out), "--quiet"]))
    report = json.loads((out / "report.json").read_text())
    assert report["world_size"] == 2 and report["resumed"]
    assert not (out / "checkpoint").exists()


def test_one_process_does_not_join_a_group(monkeypatch) -> None:
    from recast import distributed

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    distributed.start()
    assert distributed.size() == 1 and distributed.is_main()
