"""--teacher-precision: the teacher's target forward under bfloat16 autocast."""

import copy

import pytest
import torch
from torch import nn

import recast
from recast.engine import RecastConfig
from recast.errors import RecastError
from recast.losses import LOSSES
from recast.precision import TargetChain, auto_precision, expected_precision, \
    finetune_reads_teacher, has_fast_bfloat16, teacher_autocast
from recast.presets import make_config
from recast.progress import Progress
from recast.walker import walk

CPU = torch.device("cpu")


def _chain(teacher: nn.Module) -> nn.Sequential:
    """The teacher as the chain of blocks a recast reads."""
    return walk(copy.deepcopy(teacher).eval(), (1, 3, 32, 32)).as_module()


def test_a_float32_target_chain_is_the_chain_itself(vgg_teacher, loaders) -> None:
    chain = _chain(vgg_teacher)
    x, _ = next(iter(loaders[1]))
    with torch.no_grad():
        assert torch.equal(TargetChain(chain, "float32")(x), chain(x))


def test_bfloat16_targets_come_back_float32_and_close(vgg_teacher, loaders) -> None:
    """The logits a KD fine-tune reads: float32 tensors, within bfloat16's rounding of
    the float32 ones, with the same predicted class almost everywhere."""
    chain = _chain(vgg_teacher)
    x, _ = next(iter(loaders[1]))
    with torch.no_grad():
        exact, low = chain(x), TargetChain(chain, "bfloat16")(x)
    assert low.dtype == torch.float32
    assert not torch.equal(low, exact)  # it did run in lower precision
    assert (low - exact).abs().max() < 0.1 * exact.abs().max()
    assert (low.argmax(1) == exact.argmax(1)).float().mean() > 0.9


def test_auto_is_bfloat16_exactly_where_the_device_has_it() -> None:
    kd = RecastConfig(finetune_loss="kd", teacher_precision="auto")
    expected = "bfloat16" if has_fast_bfloat16(CPU) else "float32"
    assert expected_precision(kd, False, has_fast_bfloat16(CPU)) == expected
    assert expected_precision(kd, False, fast_bfloat16=False) == "float32"
    assert not has_fast_bfloat16(torch.device("meta"))


def test_auto_stays_float32_where_only_the_block_steps_read_the_teacher() -> None:
    """Where the fine-tune skips the teacher its forward is a small share of the run."""
    assert auto_precision(True, True) == "bfloat16"
    assert [auto_precision(*given) for given in ((True, False), (False, True),
                                                 (False, False))] == ["float32"] * 3
    ce = RecastConfig(finetune_loss="ce", teacher_precision="auto")
    assert expected_precision(ce, False, fast_bfloat16=True) == "float32"
    given = RecastConfig(finetune_loss="ce", teacher_precision="bfloat16")
    assert expected_precision(given, False, fast_bfloat16=True) == "bfloat16"


@pytest.mark.parametrize("loss, share, epochs, reads", [
    ("kd", 1.0, 5.0, True), ("kd", 0.25, 5.0, True), ("ce", 1.0, 5.0, False),
    ("mse-ce", 0.5, 5.0, True), ("kd-soft", 1.0, 5.0, True), ("kd", 1.0, 0.0, False)])
def test_a_fine_tune_reads_the_teacher_where_its_loss_needs_it_and_it_runs(
        loss, share, epochs, reads) -> None:
    config = RecastConfig(finetune_loss=loss, finetune_teacher_share=share,
                          finetune_epochs=epochs)
    assert finetune_reads_teacher(config) is reads


def test_the_fast_presets_auto_follows_its_settled_fine_tune_loss() -> None:
    """--finetune-loss auto is KD after a closed-form start, CE without one: auto
    precision reads the settled loss, so a compression pair keeps float32 targets."""
    fast = make_config("fast", {})
    assert fast.teacher_precision == "auto"
    assert finetune_reads_teacher(fast.settle_finetune(solved=True))
    assert not finetune_reads_teacher(fast.settle_finetune(solved=False))


def test_float32_adds_no_autocast() -> None:
    with teacher_autocast("float32", CPU):
        assert not torch.is_autocast_enabled("cpu")
    with teacher_autocast("bfloat16", CPU):
        assert torch.is_autocast_enabled("cpu")


def test_a_hint_loss_still_walks_a_target_chain(vgg_teacher, loaders) -> None:
    """Hints read the teacher's blocks one by one: a TargetChain is still a chain."""
    chain = _chain(vgg_teacher)
    student = copy.deepcopy(chain).train()
    loss = LOSSES["hint-ce"].objective(student, TargetChain(chain, "bfloat16"), 4.0, 0.9)
    x, y = next(iter(loaders[0]))
    assert torch.isfinite(loss(x, y))


def test_an_auto_precision_recast_records_what_it_chose_and_fits_as_float32_does(
        vgg_teacher, loaders) -> None:
    """The run says what auto became; with bfloat16 targets each block step ends near
    the loss it ends at with float32 ones (same seed, same batches)."""
    lines: list[str] = []
    progress = Progress(quiet=True)
    progress.log = lines.append  # type: ignore[method-assign]
    runs = {}
    for precision in ("auto", "float32"):
        config = RecastConfig(epochs_per_block=0.2, finetune_epochs=0.05, finetune_loss="kd",
                              teacher_precision=precision)
        runs[precision] = recast.recast(copy.deepcopy(vgg_teacher), "conv", 0.5,
                                        train_loader=loaders[0], test_loader=loaders[1],
                                        config=config, progress=progress)
    chosen = auto_precision(has_fast_bfloat16(CPU), finetune_reads_teacher=True)
    assert runs["auto"].config.teacher_precision == chosen
    assert any(f"teacher precision auto: {chosen}" in line for line in lines)
    losses = {p: [b["step"]["final_mse"] for b in r.report["blocks"] if "step" in b]
              for p, r in runs.items()}
    assert losses["auto"] == pytest.approx(losses["float32"], rel=0.25)


def _auto_run(teacher: nn.Module, loaders, monkeypatch, **settings) -> tuple[str, list[str]]:
    """A tiny recast with --teacher-precision auto on a device that pretends to have
    bfloat16 units, so the rule is checked on every machine: what it ran, and its log."""
    import recast.engine

    monkeypatch.setattr(recast.engine, "has_fast_bfloat16", lambda device: True)
    lines: list[str] = []
    progress = Progress(quiet=True)
    progress.log = lines.append  # type: ignore[method-assign]
    config = RecastConfig(epochs_per_block=0.05, finetune_epochs=0.02,
                          teacher_precision="auto", **settings)
    run = recast.recast(copy.deepcopy(teacher), "conv", 0.5, train_loader=loaders[0],
                        test_loader=loaders[1], config=config, progress=progress)
    return run.config.teacher_precision, lines


@pytest.mark.parametrize("settings", [
    dict(finetune_loss="ce"),  # a CE fine-tune never reads the teacher
    dict(finetune_loss="auto", solve="auto"),  # conv -> conv fits nothing: auto is CE
    dict(finetune_loss="auto", solve="target", block_training="local")])  # no fit at all
def test_an_auto_precision_recast_whose_fine_tune_skips_the_teacher_runs_float32(
        vgg_teacher, loaders, monkeypatch, settings) -> None:
    precision, lines = _auto_run(vgg_teacher, loaders, monkeypatch, **settings)
    assert precision == "float32"
    assert "teacher precision auto: float32 on cpu (the fine-tune is expected to skip " \
        "the teacher)" in lines


def test_an_auto_precision_recast_expecting_a_kd_fine_tune_runs_bfloat16_where_it_can(
        vgg_teacher, loaders, monkeypatch) -> None:
    """A solved start makes --finetune-loss auto KD: its targets in bfloat16."""
    precision, lines = _auto_run(vgg_teacher, loaders, monkeypatch, finetune_loss="auto",
                                 solve="target")
    assert precision == "bfloat16"
    assert "teacher precision auto: bfloat16 on cpu (the fine-tune is expected to read " \
        "the teacher)" in lines


def test_block_steps_and_fine_tune_compute_their_targets_in_the_chosen_precision(
        vgg_teacher, loaders, monkeypatch) -> None:
    """Both places a recast reads the teacher for targets go through teacher_autocast
    with the run's precision: the block steps (recast/steps.py) and the fine-tune's
    teacher (a TargetChain, recast/precision.py)."""
    import recast.precision
    import recast.steps

    calls: list[tuple[str, str]] = []

    def spy(where: str, real):
        def autocast(precision, device):
            calls.append((where, precision))
            return real(precision, device)
        return autocast

    monkeypatch.setattr(recast.steps, "teacher_autocast",
                        spy("step", recast.steps.teacher_autocast))
    monkeypatch.setattr(recast.precision, "teacher_autocast",
                        spy("fine-tune", recast.precision.teacher_autocast))
    config = RecastConfig(epochs_per_block=0.02, finetune_epochs=0.02, finetune_loss="kd",
                          teacher_precision="bfloat16")
    recast.recast(copy.deepcopy(vgg_teacher), "conv", 0.5, train_loader=loaders[0],
                  test_loader=loaders[1], config=config)
    assert {where for where, _ in calls} == {"step", "fine-tune"}
    assert {precision for _, precision in calls} == {"bfloat16"}


def test_an_unresolved_auto_is_refused_on_the_hot_path() -> None:
    """teacher_autocast runs on every batch, so it does not probe the device: the
    Recaster resolves auto once, and an unresolved one is an error, not a guess."""
    with pytest.raises(RecastError, match="expected_precision"):
        teacher_autocast("auto", CPU)
