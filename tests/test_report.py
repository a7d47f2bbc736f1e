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
