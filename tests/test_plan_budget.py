"""Budgets: make_plan(..., budget_params=R | budget_mults=R) picks one width ratio
whose student keeps about R of the teacher's params or mults, and says what it got.

Small models keep these fast; the 224x224 torchvision figures (resnet50,
mobilenet_v2) are measured in the change's report."""

import pytest
import torch
import torchvision
from torchvision.models.resnet import Bottleneck

from recast.errors import PlanError
from recast.models import build_model
from recast.plan import make_plan
from recast.report import compression_report, report_markdown
from recast.walker import walk


@pytest.fixture(scope="module")
def vgg16():
    return walk(build_model("vgg16"))


@pytest.mark.parametrize("measure,asked", [("params", 0.25), ("mults", 0.1)])
def test_vgg16_budget_lands_within_ten_percent(vgg16, measure: str, asked: float) -> None:
    plan = make_plan(vgg16, "conv", **{f"budget_{measure}": asked})
    report = compression_report(plan, latency=False)
    got = report["student"][measure] / report["teacher"][measure]
    assert abs(got - asked) <= 0.1 * asked and got <= asked
    assert plan.budget["measure"] == measure and plan.budget["asked"] == asked
    assert plan.budget["got"] == pytest.approx(got, abs=1e-4)
    assert 0 < plan.budget["width"] < 1
    assert report["budget"] == plan.budget and "Budget: " in report_markdown(report)


def test_a_bottleneck_resnet_budget_in_mults() -> None:
    # resnet50's own bottleneck blocks, one per stage: the 224 model in miniature
    model = torchvision.models.resnet.ResNet(Bottleneck, [1, 1, 1, 1], num_classes=10)
    plan = make_plan(walk(model.eval(), (1, 3, 64, 64)), "mbconv", budget_mults=0.2)
    got = plan.size["student"]["mults"] / plan.size["teacher"]["mults"]
    assert abs(got - 0.2) <= 0.02 and plan.budget["got"] == pytest.approx(got, abs=1e-4)


def test_a_mobilenet_budget_in_params() -> None:
    model = torchvision.models.mobilenet_v2(width_mult=0.5, num_classes=10).eval()
    plan = make_plan(walk(model, (1, 3, 32, 32)), "mbconv", budget_params=0.5)
    got = plan.size["student"]["params"] / plan.size["teacher"]["params"]
    assert abs(got - 0.5) <= 0.05
    with torch.no_grad():
        assert plan.build_student().eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_a_budget_the_widest_student_undercuts_says_so() -> None:
    plan = make_plan(walk(build_model("resnet20", width=0.5)), "conv", budget_params=0.9)
    assert plan.budget["width"] == 1.0 and "even width 1" in plan.budget["note"]


def test_an_impossible_budget_names_the_least_it_can_do(vgg16) -> None:
    with pytest.raises(PlanError, match="ask for at least --budget-params"):
        make_plan(vgg16, "conv", budget_params=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    ({"width": 0.5, "budget_params": 0.25}, "give only one"),
    ({"budget_params": 0.25, "budget_mults": 0.25}, "give only one"),
    ({"budget_mults": 1.5}, "outside"),
])
def test_budget_arguments_are_checked(vgg16, kwargs, match) -> None:
    with pytest.raises(PlanError, match=match):
        make_plan(vgg16, "conv", **kwargs)


def test_a_budget_whose_full_width_recasts_nothing_looks_narrower() -> None:
    """At width 1 every basic block is bigger than its dense stage (all kept, so the
    plan would be refused); a budget of 1.0 must find the width that recasts some."""
    chain = walk(build_model("densenet_bc_100_12", width=0.5))
    plan = make_plan(chain, "basic", budget_params=1.0)
    assert plan.recast_steps() and plan.budget["width"] < 1.0
    assert plan.size["student"]["params"] <= plan.size["teacher"]["params"]
