"""The compression report reproduces the paper's Table 3 counts."""



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


def test_a_speedup_under_half_the_mults_ratio_is_explained_in_one_line(monkeypatch) -> None:
    import torchvision

    import recast.report as report_module
    from recast.walker import walk

    chain = walk(torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=10).eval(),
                 (1, 3, 32, 32))
    plan = make_plan(chain, "mbconv", 0.5)
    # latency as measured: the student no faster at batch 1 than the teacher
    monkeypatch.setattr(report_module, "measure_latency_ms", lambda net, shape, batch: 1.0)
    report = report_module.compression_report(plan)
    assert report["ratio"]["latency_batch1"] == 1.0 and report["ratio"]["mults"] > 2
    assert "memory-bound depthwise convs" in report["speedup_note"]
    assert report["speedup_note"] in report_module.report_markdown(report)


def test_recast_report_times_onnx_runtime_beside_pytorch_when_installed() -> None:
    import pytest

    pytest.importorskip("onnxruntime")
    plan = make_plan(walk(build_model("resnet20", width=0.25)), "conv", 0.5)
    report = compression_report(plan, latency_batches=(1,), onnx=True)
    for side in ("teacher", "student"):
        assert report[side]["onnx_latency_ms"]["batch1"] > 0
    assert report["ratio"]["onnx_latency_batch1"] > 0
    from recast.report import report_markdown

    assert "| ONNX Runtime b1/b64 (ms) |" in report_markdown(report)


def test_the_step_table_says_when_a_fit_solved_input_convs_not_the_target() -> None:
    """Two steps' fit MSEs measure different things (recast/steps.py StepRecord); the
    report must not print them as one quantity."""
    from recast.run_report import _step_lines, add_steps
    from recast.steps import CLOSED_FORM, INPUT_CONVS, StepRecord

    report = {"blocks": [{"index": i, "name": f"b{i}", "kind": "basic", "target": "conv"}
                         for i in range(2)]}
    steps = [StepRecord(i, f"b{i}", "basic", "conv", i, 0.1, 50.0, 1.0, 64, True,
                        fit_mse_before=0.5, fit_mse_after=0.25, fit_kind=kind)
             for i, kind in enumerate((CLOSED_FORM, INPUT_CONVS))]
    add_steps(report, steps, {})
    rows = [line for line in _step_lines(report) if line.startswith("| 0 |") or
            line.startswith("| 1 |")]
    assert rows[0].endswith("| 0.5 -> 0.25 |")
    assert rows[1].endswith("| 0.5 -> 0.25 (input convs, summed) |")
