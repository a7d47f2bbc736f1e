"""recast/losses.py: the loss registry the fine-tune, the baselines and the CLI share."""

import copy
import re

import pytest
import torch

from recast.errors import RecastError
from recast.finetune import finetune, finetune_label
from recast.losses import LOSS_WEIGHTS, LOSSES, hinton_kd, labels_only
from recast.flags import config_flags
from recast.settings import RecastConfig


def test_hinton_kd_of_identical_logits_is_only_the_label_term() -> None:
    logits, labels = torch.randn(8, 10), torch.arange(8)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(hinton_kd(logits, logits, labels, 4.0, 0.9), 0.1 * ce, atol=1e-6)


def test_a_loss_without_the_teacher_never_runs_it() -> None:
    calls = []

    def teacher(x):
        calls.append(1)
        return x

    loss = LOSSES["ce"].objective(lambda x: x, teacher, 4.0, 0.9)
    loss(torch.randn(4, 10), torch.arange(4))
    assert not calls and labels_only(torch.randn(2, 3), None, torch.arange(2)) > 0


def test_a_distilling_loss_runs_the_teacher_without_gradients() -> None:
    student = torch.nn.Linear(4, 3)
    teacher = torch.nn.Linear(4, 3)
    loss = LOSSES["mse-ce"].objective(student, teacher, 4.0, 0.9)
    loss(torch.randn(5, 4), torch.arange(5) % 3).backward()
    assert student.weight.grad is not None and teacher.weight.grad is None


def test_every_registered_loss_is_a_fine_tune_choice() -> None:
    """Every loss of the registry, and auto, which settles to one of them."""
    choices = dict(config_flags())["--finetune-loss"]["choices"]
    assert choices == [*LOSSES, "auto"]


def test_teacher_only_losses_never_read_labels() -> None:
    """kd-soft, mse and kd at alpha 1 run with labels=None; the others say they read them."""
    from recast.losses import soft_targets

    student, teacher = torch.randn(8, 10), torch.randn(8, 10)
    for name in ("kd-soft", "mse"):
        entry = LOSSES[name]
        assert not entry.reads_labels(4.0, 0.9) and entry.needs_teacher
        assert entry.make(4.0, 0.9)(student, teacher, None) > 0
    assert LOSSES["kd"].make(4.0, 1.0)(student, teacher, None) == soft_targets(student, teacher)
    assert torch.equal(LOSSES["kd"].make(4.0, 1.0)(student, teacher, None),
                       hinton_kd(student, teacher, torch.arange(8), 4.0, 1.0))
    assert [n for n, e in LOSSES.items() if e.reads_labels(4.0, 0.9)] == \
        ["mse-ce", "kd", "ce", "rkd+kd", "at+kd", "hint-ce", "hint-mse-ce"]
    assert [n for n, e in LOSSES.items() if e.reads_labels(4.0, 1.0)] == \
        ["mse-ce", "ce", "hint-ce", "hint-mse-ce"]


def test_an_objective_without_labels_hands_the_loss_none() -> None:
    import pytest

    from recast.errors import RecastError
    from recast.losses import LogitLoss

    seen = []
    spy = LogitLoss("spy", "spy", True, lambda t, a: lambda s, te, y: seen.append(y) or s.sum(),
                    reads_labels=lambda t, a: False)
    spy.objective(lambda x: x, lambda x: x * 2, 4.0, 0.9, labels=False)(
        torch.randn(4, 10), torch.arange(4))
    assert seen == [None]
    with pytest.raises(RecastError, match="--finetune-loss ce reads labels"):
        LOSSES["ce"].objective(lambda x: x, lambda x: x, 4.0, 0.9, labels=False)


def _chain(widths: tuple[int, int], seed: int) -> torch.nn.Sequential:
    """A tiny chain: two conv blocks (32 -> 16 -> 8 pixels) and a head."""
    from torch import nn

    torch.manual_seed(seed)
    a, b = widths
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, a, 3, padding=1), nn.BatchNorm2d(a), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(b, 10)))


FEATURE_LOSSES = ("rkd+kd", "at+kd")


@pytest.mark.parametrize("name", FEATURE_LOSSES)
def test_a_feature_loss_is_hinton_kd_when_the_student_computes_what_the_teacher_does(
        name: str) -> None:
    teacher = _chain((8, 16), 0).eval().requires_grad_(False)
    student = copy.deepcopy(teacher).requires_grad_(True)
    x, y = torch.randn(6, 3, 32, 32), torch.arange(6)
    kd = LOSSES["kd"].objective(student, teacher, 4.0, 0.9)(x, y)
    assert torch.allclose(LOSSES[name].objective(student, teacher, 4.0, 0.9)(x, y), kd,
                          atol=1e-6)


@pytest.mark.parametrize("name, weight", [("rkd+kd", "rkd_angle_weight"),
                                          ("at+kd", "at_weight")])
def test_a_feature_loss_holds_a_narrower_student_to_the_teacher(name: str, weight: str) -> None:
    """Half-width student: the feature term is positive, grows with its weight, trains
    every student block and leaves the teacher alone; weight 0 leaves Hinton KD."""
    teacher = _chain((8, 16), 0).eval().requires_grad_(False)
    student = _chain((4, 8), 1)
    x, y = torch.randn(6, 3, 32, 32), torch.arange(6)
    kd = LOSSES["kd"].objective(student, teacher, 4.0, 0.9)(x, y)
    loss = LOSSES[name].objective(student, teacher, 4.0, 0.9)(x, y)
    heavier = LOSSES[name].objective(student, teacher, 4.0, 0.9,
                                     weights={weight: 2 * LOSS_WEIGHTS[weight]})(x, y)
    assert loss > kd and heavier > loss
    off = LOSSES[name].objective(student, teacher, 4.0, 0.9,
                                 weights={k: 0.0 for k in LOSS_WEIGHTS})(x, y)
    assert torch.allclose(off, kd)
    loss.backward()
    assert all(block[0].weight.grad.abs().sum() > 0 for block in student[:2])
    assert all(p.grad is None for p in teacher.parameters())


def test_rkd_sees_the_batch_s_shape_not_its_width_or_scale() -> None:
    """RKD compares relations: a wider, rotated, scaled copy of the teacher's embedding
    matches it; the same points in another order do not."""
    from recast.feature_losses import rkd

    teacher = torch.randn(16, 8)
    rotation = torch.linalg.qr(torch.randn(12, 12))[0][:, :8]  # orthonormal columns
    wider = 3 * teacher @ rotation.t()
    assert rkd(wider, teacher).item() == pytest.approx(0, abs=1e-4)
    assert rkd(teacher[torch.randperm(16)], teacher) > 0.01


def test_attention_transfer_compares_maps_of_one_size_only() -> None:
    from recast.feature_losses import attention_positions

    student = [torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4), torch.randn(2, 10)]
    teacher = [torch.randn(2, 8, 8, 8), torch.randn(2, 8, 2, 2), torch.randn(2, 10)]
    assert [s.shape[1] for s, _ in attention_positions(student, teacher)] == [4]


def test_feature_losses_read_labels_through_alpha_only() -> None:
    teacher = _chain((8, 16), 0).eval()
    student = _chain((4, 8), 1)
    x = torch.randn(4, 3, 32, 32)
    for name in FEATURE_LOSSES:
        with pytest.raises(RecastError, match=f"--finetune-loss {re.escape(name)} reads "
                                              f"labels.*--kd-alpha 1"):
            LOSSES[name].objective(student, teacher, 4.0, 0.9, labels=False)
        loss = LOSSES[name].objective(student, teacher, 4.0, 1.0, labels=False)
        assert torch.isfinite(loss(x, torch.full((4,), 99)))  # labels never read
        with pytest.raises(RecastError, match="--kd-alpha 0.9 reads labels"):
            RecastConfig(finetune_loss=name, labels="none").validate()
        RecastConfig(finetune_loss=name, labels="none", kd_alpha=1.0).validate()


def test_feature_losses_need_chains_and_weights_are_checked_settings() -> None:
    with pytest.raises(RecastError, match="chains of blocks"):
        LOSSES["at+kd"].objective(lambda x: x, lambda x: x, 4.0, 0.9)
    for name in LOSS_WEIGHTS:
        with pytest.raises(RecastError, match=f"--{name.replace('_', '-')} -1.0 must be"):
            RecastConfig(**{name: -1.0}).validate()
    config = RecastConfig(finetune_loss="rkd+kd", rkd_angle_weight=10, kd_temperature=2.0)
    assert finetune_label(config) == ("RKD on the penultimate embeddings (distance 25, "
                                      "angle 10) + Hinton KD (T=2.0, alpha=0.9)")


@pytest.mark.parametrize("name, labels", [("rkd+kd", "given"), ("at+kd", "given"),
                                          ("at+kd", "none")])
def test_a_fine_tune_on_a_feature_loss_runs_and_trains(name: str, labels: str,
                                                        loaders) -> None:
    """Three batches of the real fine-tune of a narrower student chain."""
    from recast.progress import Progress

    teacher = _chain((8, 16), 0).eval().requires_grad_(False)
    student = _chain((4, 8), 1)
    before = copy.deepcopy(student.state_dict())
    config = RecastConfig(finetune_epochs=3 / len(loaders[0]), finetune_loss=name,
                          labels=labels, kd_alpha=1.0 if labels == "none" else 0.9)
    result = finetune(student, teacher, config, loaders[0], None, torch.device("cpu"),
                      Progress(quiet=True), on_point=lambda images, accuracy: None)
    assert result["images"] == 3 * 64 and torch.isfinite(torch.tensor(result["loss"]))
    assert all(not torch.equal(v, before[k]) for k, v in student.state_dict().items()
               if v.is_floating_point())


def test_hints_hold_every_same_shape_block_to_the_teacher_s() -> None:
    """hint-ce is CE where the student computes what the teacher does; otherwise the
    mean block-output MSE is added, weighted, trains every block, never the teacher."""
    teacher = _chain((8, 16), 0).eval().requires_grad_(False)
    x, y = torch.randn(6, 3, 32, 32), torch.arange(6)
    twin = copy.deepcopy(teacher).requires_grad_(True)
    ce = LOSSES["ce"].objective(twin, teacher, 4.0, 0.9)(x, y)
    assert torch.allclose(LOSSES["hint-ce"].objective(twin, teacher, 4.0, 0.9)(x, y), ce)
    student = _chain((8, 16), 1)  # same widths, other weights
    ce = LOSSES["ce"].objective(student, teacher, 4.0, 0.9)(x, y)
    loss = LOSSES["hint-ce"].objective(student, teacher, 4.0, 0.9)(x, y)
    heavier = LOSSES["hint-ce"].objective(student, teacher, 4.0, 0.9,
                                          weights={"hint_weight": 2.0})(x, y)
    assert ce < loss < heavier and torch.allclose(heavier - loss, loss - ce)
    loss.backward()
    assert all(block[0].weight.grad.abs().sum() > 0 for block in student[:2])
    assert all(p.grad is None for p in teacher.parameters())


def test_hints_beside_the_authors_loss_add_the_block_term_to_logit_mse_ce() -> None:
    """hint-mse-ce is exactly hint-ce's block term plus the authors' MSE + CE."""
    teacher = _chain((8, 16), 0).eval().requires_grad_(False)
    student = _chain((8, 16), 1)
    x, y = torch.randn(6, 3, 32, 32), torch.arange(6)
    hint_ce = LOSSES["hint-ce"].objective(student, teacher, 4.0, 0.9)(x, y)
    ce = LOSSES["ce"].objective(student, teacher, 4.0, 0.9)(x, y)
    mse_ce = LOSSES["mse-ce"].objective(student, teacher, 4.0, 0.9)(x, y)
    both = LOSSES["hint-mse-ce"].objective(student, teacher, 4.0, 0.9)(x, y)
    assert mse_ce > ce and hint_ce > ce
    assert torch.allclose(both, (hint_ce - ce) + mse_ce)


def test_hints_refuse_a_student_with_no_block_of_the_teacher_s_shape() -> None:
    teacher = _chain((8, 16), 0).eval().requires_grad_(False)
    with pytest.raises(RecastError, match=r"--method hint\): no block of the student"):
        LOSSES["hint-ce"].objective(_chain((4, 8), 1), teacher, 4.0, 0.9)(
            torch.randn(2, 3, 32, 32), torch.arange(2))
