"""The `recast report`, `inspect` and `models` commands: JSON keys, one-line errors."""

import json
import subprocess
import sys

import pytest

from recast.cli import run


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
    (["report", "vgg11", "--target", "wide", "--width", "0.5"], "unknown target kind"),
    (["report", "vgg11", "--target", "conv", "--width", "2"], "outside (0, 1]"),
    (["inspect", "--model-file", "nope.py:build"], "no such file"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, message, capsys) -> None:
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_model_file_walks_a_user_model(capsys) -> None:
    path = __file__.replace("test_cli_report.py", "test_custom_model.py")
    assert run(["inspect", "--model-file", f"{path}:build_net", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kinds"]["basic"] == 1


def test_a_mults_budget_lands_within_ten_percent(capsys) -> None:
    assert run(["report", "vgg16", "--dataset", "cifar10", "--target", "conv",
                "--budget-mults", "0.25", "--no-latency", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert abs(1 / report["ratio"]["mults"] - 0.25) <= 0.025
    assert report["budget"]["asked"] == 0.25


def test_resnet50_into_mobile_blocks_is_smaller_and_runs(capsys) -> None:
    assert run(["report", "resnet50", "--target", "mbconv", "--width", "0.5",
                "--no-latency", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ratio"]["params"] > 1 and report["ratio"]["mults"] > 1


def test_a_budget_and_a_width_together_are_one_line(capsys) -> None:
    assert run(["report", "vgg16", "--dataset", "cifar10", "--target", "conv", "--width",
                "0.5", "--budget-params", "0.25", "--no-latency"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recast: error:") and len(err.strip().splitlines()) == 1
