"""recast/settings.py: presets (the paper's is the authors' CIFAR schedule, METHOD.md),
the budget split, the checks every setting gets, the flags derived from the fields."""

import pytest

from recast.errors import RecastError
from recast.flags import config_flags
from recast.presets import PRESETS, make_config
from recast.settings import RecastConfig, step_images


def test_paper_preset_is_the_published_schedule() -> None:
    config = RecastConfig(**PRESETS["paper"])
    assert (config.epochs_per_block, config.finetune_epochs) == (60, 100)
    assert (config.optimizer, config.lr, config.scheduler, config.step_size) == (
        "adam", 1e-3, "step", 20)
    assert (config.batch_size, config.init, config.freeze_prefix) == (64, "random", False)
    assert config.finetune_loss == "mse-ce"


def test_step_schedule_drops_lr_tenfold_every_20_epochs() -> None:
    import torch

    from recast.training import make_optimizer

    params = [torch.nn.Parameter(torch.zeros(1))]
    opt, schedule = make_optimizer(params, RecastConfig(**PRESETS["paper"]).block_schedule(),
                                   total_batches=60 * 10, batches_per_epoch=10)
    lrs = []
    for _ in range(60 * 10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert [round(lrs[i], 7) for i in (0, 199, 200, 400)] == [1e-3, 1e-3, 1e-4, 1e-5]


@pytest.mark.parametrize("pair", ["vgg16-conv", "wrn16_4-basic", "resnet20-conv",
                                  "resnet29-conv", "resnet56-conv", "densenet40-basic"])
def test_fast_preset_runs_the_benchmarks_headline_variant_on_each_pair(pair: str) -> None:
    """What the table reports as 'recast' is what `--preset fast` runs on that pair:
    the same steps solved, and every setting that acts there equal once the warm-up
    is settled (--solve-hidden acts only on a fitted basic target no warm start fills)."""
    from dataclasses import replace

    # scripts/ is on the path (pyproject: pythonpath)
    from bench_cifar10 import PAIRS
    from bench_variants import HEADLINE_VARIANTS, VARIANTS, headline_variant

    from recast.models import build_model
    from recast.plan import make_plan
    from recast.precision import expected_precision
    from recast.walker import walk
    from recast.warmstart import can_warm_start

    spec = PAIRS[pair]
    plan = make_plan(walk(build_model(spec["model"], width=spec["teacher_width"])),
                     spec["target"], spec["width"])
    steps = plan.recast_steps()
    fraction, overrides = VARIANTS[headline_variant(HEADLINE_VARIANTS, pair, spec["kind"])]
    variant = RecastConfig(batch_size=128, budget_epochs=18, block_fraction=fraction,
                           **overrides).split(len(steps))  # as the benchmark builds it
    fast = make_config("fast", {}).split(len(steps))
    modes = {c.solve: [c.solve_mode(s.block.kind, s.target) for s in steps]
             for c in (fast, variant)}
    assert len(set(map(tuple, modes.values()))) == 1, modes
    solved = any(mode != "none" for mode in modes[fast.solve])
    assert solved is (spec["kind"] == "transformation")
    shaped = any(mode != "none" and s.target == "basic" and not can_warm_start(
        s.block.kind, s.target) for mode, s in zip(modes[fast.solve], steps))
    assert shaped is (pair == "densenet40-basic")
    unused = {"solve": ""} if shaped else {"solve": "", "solve_hidden": ""}

    def settled(config: RecastConfig) -> RecastConfig:
        """As the Recaster settles it on the benchmark's CPU (AVX512-BF16)."""
        precision = expected_precision(config, solved, fast_bfloat16=True)
        return replace(config.settle_finetune(solved), teacher_precision=precision,
                       **unused)

    assert settled(fast) == settled(variant)
    assert settled(fast).teacher_precision == \
        ("bfloat16" if spec["kind"] == "transformation" else "float32")


def test_a_budget_splits_between_block_steps_and_fine_tune() -> None:
    config = RecastConfig(**PRESETS["fast"]).split(13)
    assert config.epochs_per_block * 13 == pytest.approx(18 * 0.2)
    assert config.finetune_epochs == pytest.approx(18 * 0.8)
    assert config.budget_epochs is None


@pytest.mark.parametrize("name, value, flag", [
    ("lr", -1.0, "--lr"), ("lr", float("nan"), "--lr"), ("batch_size", 0, "--batch-size"),
    ("epochs_per_block", -1.0, "--epochs-per-block"), ("kd_alpha", 1.5, "--kd-alpha"),
    ("block_fraction", 2.0, "--block-fraction"), ("finetune_loss", "l1", "--finetune-loss"),
    ("step_test_images", -1, "--step-test-images"),
    ("step_test_images", 2.5, "--step-test-images"),
])
def test_a_setting_out_of_range_names_its_flag(name, value, flag) -> None:
    with pytest.raises(RecastError, match=flag):
        make_config("fast", {name: value})


def test_every_field_with_a_flag_becomes_a_cli_option() -> None:
    from dataclasses import fields

    flags = {kwargs["dest"] for _, kwargs in config_flags()}
    assert flags == {f.name for f in fields(RecastConfig)} - {"seed"}


def test_explicit_epochs_replace_the_presets_budget() -> None:
    config = make_config("fast", {"epochs_per_block": 0.5})
    assert config.budget_epochs is None and config.epochs_per_block == 0.5


def test_help_shows_what_each_preset_sets() -> None:
    help_text = dict(config_flags())["--finetune-loss"]["help"]
    assert "fast: auto" in help_text and "default mse-ce" in help_text


@pytest.mark.parametrize("solve, kind, target, mode", [
    ("auto", "basic", "conv", "target"), ("auto", "dense", "basic", "target"),
    ("auto", "basic", "basic", "none"), ("auto", "conv", "conv", "none"),
    ("target", "conv", "conv", "target"), ("target+next", "basic", "basic", "target+next"),
    ("none", "basic", "conv", "none"),
])
def test_solve_auto_fits_only_a_change_of_kind(solve, kind, target, mode) -> None:
    assert RecastConfig(solve=solve).solve_mode(kind, target) == mode


def test_an_unset_warm_up_follows_a_closed_form_start_and_a_set_one_stays() -> None:
    unset = RecastConfig(**PRESETS["fast"]).split(13)  # a 14.4-epoch fine-tune
    assert unset.finetune_warmup is None
    assert unset.settle_finetune(solved=True).finetune_warmup == 1.0
    assert unset.settle_finetune(solved=False).finetune_warmup == 0.0
    # a short fine-tune ramps up over a tenth of itself, so it still reaches its rate
    short = RecastConfig(finetune_epochs=0.25)
    assert short.settle_finetune(solved=True).finetune_warmup == pytest.approx(0.025)
    assert RecastConfig(finetune_warmup=0.0).settle_finetune(solved=True).finetune_warmup == 0.0
    assert RecastConfig(finetune_warmup=2.0).settle_finetune(solved=False).finetune_warmup == 2.0


@pytest.mark.parametrize("given, solved, loss, share", [
    ({}, True, "kd", 0.25),                                   # the hand-over
    ({}, False, "ce", 1.0),                                   # nothing fitted: CE
    ({"finetune_teacher_share": 0.5}, True, "kd", 0.5),       # a given share stays
    ({"finetune_teacher_share": 0.5}, False, "kd", 0.5),      # and asks for a hand-over
])
def test_auto_loss_hands_kd_over_to_ce_after_a_closed_form_start(given, solved, loss,
                                                                 share) -> None:
    config = RecastConfig(finetune_loss="auto", **given).validate()
    settled = config.settle_finetune(solved)
    assert (settled.finetune_loss, settled.finetune_teacher_share) == (loss, share)
    assert settled.validate() == settled


def test_an_explicit_loss_is_not_settled() -> None:
    for config in (RecastConfig(finetune_loss="kd"), RecastConfig(finetune_loss="ce")):
        settled = config.settle_finetune(solved=True)
        assert (settled.finetune_loss, settled.finetune_teacher_share) == \
            (config.finetune_loss, 1.0)


def test_auto_loss_is_checked_as_kd_and_refused_without_labels(monkeypatch) -> None:
    assert RecastConfig(finetune_loss="auto").loss_to_check == "kd"
    with pytest.raises(RecastError, match="--finetune-loss auto ends on CE"):
        make_config("smoke", {"finetune_loss": "auto", "labels": "none"})
    # a preset's auto, not chosen, gives way to a loss on the teacher's outputs
    monkeypatch.setitem(PRESETS, "smoke", dict(PRESETS["smoke"], finetune_loss="auto"))
    assert make_config("smoke", {"labels": "none"}).finetune_loss == "kd-soft"


@pytest.mark.parametrize("given", [{"solve": "none"}, {"solve": "input"},
                                   {"block_training": "local"}])
def test_the_presets_principal_conv1_gives_way_where_nothing_is_fitted(given) -> None:
    """`fast` shapes its fits' conv1 (--solve-hidden principal); a run the user keeps
    from fitting has nothing to shape, and is not refused for the preset's choice."""
    assert make_config("fast", {}).solve_hidden == "principal"
    assert make_config("fast", given).solve_hidden == "random"
    with pytest.raises(RecastError, match="--solve-hidden principal"):
        make_config("fast", dict(given, solve_hidden="principal"))


def test_solve_hidden_without_a_closed_form_start_is_refused():
    with pytest.raises(RecastError, match="--solve-hidden principal .* add --solve auto"):
        RecastConfig(solve_hidden="principal").validate()
    with pytest.raises(RecastError, match="--block-training sequential"):
        RecastConfig(solve="auto", solve_hidden="principal", block_training="local").validate()
    assert RecastConfig(solve="auto", solve_hidden="principal").validate().solve == "auto"


def test_solve_input_combinations_that_do_nothing_are_refused():
    with pytest.raises(RecastError, match="--solve-hidden principal"):
        RecastConfig(solve="input", solve_hidden="principal").validate()
    with pytest.raises(RecastError, match="--init random"):
        RecastConfig(solve="input", init="random").validate()


def test_an_explicit_zero_step_test_images_overrides_the_presets_subset() -> None:
    """0 means the whole test set; given, it must not fall back to fast's 2000."""
    assert make_config("fast", {}).step_test_images == 2000
    assert make_config("fast", {"step_test_images": 0}).step_test_images == 0
    assert make_config("paper", {}).step_test_images == 0


def test_only_sequential_steps_measure_on_the_step_test_subset() -> None:
    """The all-at-once pass measures on the whole test set whatever the field says, so
    the report and the bench tables (which read stored records) both say 0 for it."""
    assert step_images("sequential", 2000) == 2000
    assert step_images("local", 2000) == 0
    assert step_images("", 0) == 0  # a record from before the field: the whole set
