"""timm models by ``timm/NAME``: optional, never downloaded, one line when timm is absent."""

import sys

import pytest

from conftest import cli_error
from recast.errors import RecastError
from recast.models import build_model


def test_without_timm_a_timm_name_is_one_line_naming_the_extra(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now fails
    with pytest.raises(RecastError, match=r"pip install 'recast\[timm\]'"):
        build_model("timm/resnet18")
    err = cli_error(capsys, ["report", "timm/resnet18", "--target", "conv", "--width", "0.5"])
    assert "timm" in err


def test_a_timm_model_is_built_untrained_and_plans_smaller() -> None:
    pytest.importorskip("timm")
    from recast.plan import make_plan
    from recast.walker import walk

    model = build_model("timm/resnet10t", num_classes=10)
    assert model.num_classes == 10
    plan = make_plan(walk(model.eval(), (1, 3, 64, 64)), "dwconv", 0.5)
    assert plan.size["student"]["params"] < plan.size["teacher"]["params"]
    with pytest.raises(RecastError, match="timm has no model"):
        build_model("timm/resnet_does_not_exist")
