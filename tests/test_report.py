"""The compression report reproduces the paper's Table 3 counts."""

import json
import subprocess
import sys

import pytest

from recast.cli import run
from recast.models import build_model
from recast.plan import make_plan
from recast.report import compression_report
from recast.walker import walk


def test_vgg16_to_conv_04_matches_table_3() -> None:
    report = compression_report(make_plan(walk(build_model("vgg16")), "conv", 0.4),
                                latency=False)
    assert report["teacher"]["params"] == 14_724_042
    assert report["student"]["params"] == 2_360_974
    assert round(report["teacher"]["mults"] / 1e6, 1) == 313.2
    assert round(report["student"]["mults"] / 1e6, 2) == 50.63
    assert round(report["ratio"]["mults"], 1) == 6.2
    assert report["teacher"]["macs"] >= report["teacher"]["mults"]


def test_wrn_28_10_to_basic_02_matches_table_3() -> None:
    report = compression_report(make_plan(walk(build_model("wrn_28_10")), "basic", 0.2),
                                latency=False)
    assert round(report["teacher"]["params"] / 1e6, 2) == 36.48
    assert round(report["student"]["params"] / 1e6, 2) == 1.47
    assert round(report["teacher"]["mults"] / 1e9, 2) == 5.24
    assert round(report["student"]["mults"] / 1e9, 3) == 0.214


def test_per_block_counts_add_up_to_the_whole() -> None:
    report = compression_report(make_plan(walk(build_model("resnet20")), "conv", 0.5),
                                latency=False)
    assert sum(b["params"] for b in report["blocks"]) == report["teacher"]["params"]
    assert sum(b["params_after"] for b in report["blocks"]) == report["student"]["params"]
    assert sum(b["mults_after"] for b in report["blocks"]) == report["student"]["mults"]


def test_cli_report_json_has_the_documented_keys(capsys) -> None:
    code = run(["report", "vgg11", "--dataset", "cifar10", "--target", "conv",
                "--width", "0.5", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("params", "mults", "macs"):
        assert report["teacher"][key] > report["student"][key] > 0
    assert report["teacher"]["latency_ms"]["batch1"] > 0
    assert report["student"]["latency_ms"]["batch64"] > 0
    assert {"params", "mults"} <= set(report["ratio"])
    block = report["blocks"][0]
    for key in ("name", "kind", "target", "in_channels", "out_channels", "stride",
                "params", "params_after", "mults", "mults_after"):
        assert key in block
    assert "FLOP" not in json.dumps(report)


def test_cli_inspect_vgg16_cifar_lists_13_conv_blocks(capsys) -> None:
    assert run(["inspect", "vgg16", "--dataset", "cifar10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kinds"] == {"conv": 13, "head": 1}


def test_cli_unknown_model_exits_2_with_closest_names() -> None:
    proc = subprocess.run([sys.executable, "-m", "recast", "inspect", "vgg61"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown model 'vgg61'" in proc.stderr and "vgg16" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("argv,message", [
    (["report", "vgg11", "--target", "wide"], "unknown target kind"),
    (["report", "vgg11", "--target", "conv", "--width", "2"], "outside (0, 1]"),
    (["inspect", "--model-file", "nope.py:build"], "no such file"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, message, capsys) -> None:
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_model_file_walks_a_user_model(capsys) -> None:
    path = __file__.replace("test_report.py", "test_custom_model.py")
    assert run(["inspect", "--model-file", f"{path}:build_net", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kinds"]["basic"] == 1
