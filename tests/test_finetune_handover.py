"""--finetune-teacher-share: the fine-tune learns from the teacher for a share of its
batches, then from the labels alone, with no teacher forward after the hand-over."""

import pytest
import torch
from torch import nn

from recast.errors import RecastError
from recast.finetune import finetune, finetune_label, handover
from recast.progress import Progress
from recast.settings import RecastConfig


def test_handover_runs_the_first_loss_for_its_batches_then_the_other() -> None:
    calls: list[str] = []
    first = lambda x, y: calls.append("first") or x.sum()  # noqa: E731
    then = lambda x, y: calls.append("then") or x.sum()  # noqa: E731
    loss = handover(first, then, after=2, on_handover=lambda: calls.append("handed over"))
    for _ in range(4):
        loss(torch.ones(1), torch.ones(1))
    assert calls == ["first", "first", "handed over", "then", "then"]


def test_a_resumed_fine_tune_counts_the_batches_already_run() -> None:
    calls: list[str] = []
    loss = handover(lambda x, y: calls.append("first") or x.sum(),
                    lambda x, y: calls.append("then") or x.sum(), after=3, done=2)
    for _ in range(3):
        loss(torch.ones(1), torch.ones(1))
    assert calls == ["first", "then", "then"]


class CountingTeacher(nn.Module):
    """A fixed small net that counts its forwards."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(4, 10))
        self.forwards = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forwards += 1
        return self.net(x)


def test_the_teacher_runs_only_for_its_share_of_the_fine_tune(loaders) -> None:
    """Four real batches at share 0.5: two teacher forwards, the student trained on all."""
    teacher = CountingTeacher().eval().requires_grad_(False)
    student = CountingTeacher().net
    before = [p.detach().clone() for p in student.parameters()]
    config = RecastConfig(finetune_epochs=4 / len(loaders[0]), finetune_loss="mse-ce",
                          finetune_teacher_share=0.5).validate()
    result = finetune(student, teacher, config, loaders[0], None, torch.device("cpu"),
                      Progress(quiet=True), on_point=lambda images, accuracy: None)
    assert result["images"] == 4 * 64 and teacher.forwards == 2
    assert all(not torch.equal(p, b) for p, b in zip(student.parameters(), before))


def test_the_label_says_when_the_teacher_hands_over() -> None:
    config = RecastConfig(finetune_loss="mse-ce", finetune_teacher_share=0.4)
    assert finetune_label(config) == ("MSE(teacher logits) + CE(labels) for the first 40% "
                                      "of its images, then CE(labels), no teacher")
    assert "first 99.5% of its images" in finetune_label(
        RecastConfig(finetune_loss="kd", finetune_teacher_share=0.995))
    assert finetune_label(RecastConfig(finetune_loss="mse-ce")) == \
        "MSE(teacher logits) + CE(labels)"


@pytest.mark.parametrize("settings, why", [
    (dict(finetune_loss="ce"), "--finetune-loss ce never reads the teacher"),
    (dict(finetune_loss="kd-soft", labels="none"), "the run has no labels"),
    (dict(finetune_loss="mse-ce", finetune_teacher_share=0.0), "must be a number in"),
    (dict(finetune_loss="mse-ce", finetune_teacher_share=1.5), "must be a number in"),
])
def test_a_hand_over_that_cannot_happen_is_refused(settings: dict, why: str) -> None:
    with pytest.raises(RecastError, match=why):
        RecastConfig(**{"finetune_teacher_share": 0.5, **settings}).validate()


def test_a_resumed_fine_tune_hands_over_where_the_first_would_have(loaders) -> None:
    """Stopped after its first pass and resumed from that checkpoint, a fine-tune at
    share 0.75 of two passes runs the teacher for the rest of its first 1.5 passes."""
    config = RecastConfig(finetune_epochs=2.0, finetune_loss="mse-ce",
                          finetune_teacher_share=0.75).validate()
    per_pass = len(loaders[0])
    saved: list[dict] = []
    teacher = CountingTeacher().eval().requires_grad_(False)
    finetune(CountingTeacher().net, teacher, config, loaders[0], None, torch.device("cpu"),
             Progress(quiet=True), lambda images, accuracy: None, checkpoint=saved.append)
    assert teacher.forwards == round(0.75 * 2 * per_pass) and saved[0]["batch"] == per_pass
    resumed = CountingTeacher().eval().requires_grad_(False)
    finetune(CountingTeacher().net, resumed, config, loaders[0], None, torch.device("cpu"),
             Progress(quiet=True), lambda images, accuracy: None, resume=saved[0])
    assert resumed.forwards == round(0.75 * 2 * per_pass) - per_pass


def test_a_share_given_to_the_fast_preset_hands_kd_over_to_ce() -> None:
    """`fast` fine-tunes on --finetune-loss auto: a share given alone asks for the
    hand-over, from Hinton KD, even where no closed-form start sets one."""
    from recast.presets import make_config

    config = make_config("fast", {"finetune_teacher_share": 0.5}).split(8)
    for solved in (True, False):
        settled = config.settle_finetune(solved)
        assert (settled.finetune_loss, settled.finetune_teacher_share) == ("kd", 0.5)
    with pytest.raises(RecastError, match="--finetune-loss ce never reads the teacher; add "
                                          "--finetune-loss mse-ce"):
        make_config("fast", {"finetune_teacher_share": 0.5, "finetune_loss": "ce"})


def test_an_unsettled_auto_loss_is_refused_by_the_fine_tune(loaders) -> None:
    """auto is decided after the block steps; a fine-tune handed it undecided says so."""
    teacher = CountingTeacher().eval().requires_grad_(False)
    config = RecastConfig(finetune_epochs=0.01, finetune_loss="auto").validate()
    with pytest.raises(RecastError, match="settle_finetune"):
        finetune(CountingTeacher().net, teacher, config, loaders[0], None,
                 torch.device("cpu"), Progress(quiet=True), lambda images, accuracy: None)
    assert teacher.forwards == 0
