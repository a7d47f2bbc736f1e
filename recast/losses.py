"""Distillation losses on logits, in one registry.

The registry drives the ``--finetune-loss`` choices, the engine's fine-tune
and the ``--method`` baselines alike (as torchdistill's loss registry does):
a new loss is one function and one entry here. Each entry also says whether
it reads the labels, so a run without labels (``--labels none``) can refuse
the ones that do and fine-tune on the teacher's outputs alone. Entries with a
feature term (``rkd+kd``, ``at+kd``, ``hint-ce``, ``hint-mse-ce``) also compare what
the blocks of student and teacher compute. BLOCK_LOSSES does the same for the block steps
(``--block-loss``); the math of both is in recast/feature_losses.py.
"""

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recast.errors import RecastError
from recast.feature_losses import (
    attention_positions,
    attention_transfer,
    block_outputs,
    cosine_distance,
    fsp_loss,
    hint_loss,
    rkd,
)

# the weights of the feature terms, by their setting's name, at the papers' values:
# AT's beta (normalised maps), RKD's distance and angle weights, the hints' weight
LOSS_WEIGHTS: dict[str, float] = {"at_weight": 1000.0, "rkd_distance_weight": 25.0,
                                  "rkd_angle_weight": 50.0, "hint_weight": 1.0}


def weights_of(config: Any) -> dict[str, float]:
    """The feature-term weights a config (RecastConfig) sets, defaults for the rest."""
    return {k: float(getattr(config, k, v)) for k, v in LOSS_WEIGHTS.items()}


def hinton_kd(student: Tensor, teacher: Tensor, labels: Tensor, temperature: float = 4.0,
              alpha: float = 0.9) -> Tensor:
    """alpha * T^2 * KL(p_T || p_S) + (1 - alpha) * CE (Hinton et al., 2015)."""
    return alpha * soft_targets(student, teacher, temperature=temperature) + \
        (1 - alpha) * F.cross_entropy(student, labels)


def soft_targets(student: Tensor, teacher: Tensor, labels: Tensor | None = None,
                 temperature: float = 4.0) -> Tensor:
    """T^2 * KL(p_T || p_S): Hinton KD with all weight on the soft targets, no labels."""
    soft = F.kl_div(F.log_softmax(student / temperature, 1),
                    F.softmax(teacher / temperature, 1), reduction="batchmean")
    return temperature**2 * soft


def logit_mse(student: Tensor, teacher: Tensor, labels: Tensor | None = None) -> Tensor:
    """MSE between the logits: the authors' fine-tune loss without its label term."""
    return F.mse_loss(student, teacher)


def labels_only(student: Tensor, teacher: Tensor | None, labels: Tensor) -> Tensor:
    """CE on the labels; ignores the teacher, so callers can skip its forward."""
    return F.cross_entropy(student, labels)


def logit_mse_ce(student: Tensor, teacher: Tensor, labels: Tensor) -> Tensor:
    """The recasting authors' fine-tune loss: MSE(logits) + CE, weights 1:1."""
    return F.mse_loss(student, teacher) + F.cross_entropy(student, labels)


# (student logits, teacher logits or None, labels) -> loss
LogitLossFn = Callable[[Tensor, Tensor | None, Tensor], Tensor]
# (student block outputs, teacher block outputs), logits last -> a feature term
FeatureTerm = Callable[[list[Tensor], list[Tensor]], Tensor]


@dataclass(frozen=True)
class LogitLoss:
    """A fine-tune loss: how it is computed, shown, and whether it needs the teacher."""

    name: str
    label: str
    needs_teacher: bool
    # (temperature, alpha) -> the loss function: the settings a loss may read
    make: Callable[[float, float], LogitLossFn]
    # (temperature, alpha) -> whether the loss reads the labels at those settings
    reads_labels: Callable[[float, float], bool] = lambda t, a: True
    # weights -> a term on the block outputs added to the logit loss; student and
    # teacher are then chains (nn.Sequential, block i at position i)
    features: Callable[[Mapping[str, float]], FeatureTerm] | None = None
    # the feature term compares block outputs of the teacher's own shape (hints): a
    # plan whose student is narrower at every block gives it nothing to compare
    same_shapes: bool = False

    def objective(self, student: Callable[[Tensor], Tensor], teacher: Callable[[Tensor], Tensor],
                  temperature: float, alpha: float, labels: bool = True,
                  weights: Mapping[str, float] | None = None) -> Callable[[Tensor, Tensor], Tensor]:
        """loss(images, labels) of ``student``; runs the teacher only if the loss reads it.

        With ``labels=False`` the loss never sees the batch's labels (it gets None),
        so a run without labels cannot read one by accident. ``weights`` are the
        feature terms' (LOSS_WEIGHTS by default).
        """
        combine = self.make(temperature, alpha)
        if not labels and self.reads_labels(temperature, alpha):
            at_one = "" if self.reads_labels(temperature, 1.0) else " (or --kd-alpha 1)"
            raise RecastError(f"--finetune-loss {self.name} reads labels, but the run has "
                              f"none; use --finetune-loss kd-soft or mse (the teacher's "
                              f"outputs only){at_one}")
        if self.features is not None:
            if not (isinstance(student, nn.Sequential) and isinstance(teacher, nn.Sequential)):
                raise RecastError(f"--finetune-loss {self.name} needs the student and the "
                                  f"teacher as chains of blocks (nn.Sequential)")
            term = self.features({**LOSS_WEIGHTS, **(weights or {})})

            def with_features(x: Tensor, y: Tensor) -> Tensor:
                with torch.no_grad():
                    expected = block_outputs(teacher, x)
                outputs = block_outputs(student, x)
                return combine(outputs[-1], expected[-1], y if labels else None) + \
                    term(outputs, expected)

            return with_features

        def loss(x: Tensor, y: Tensor) -> Tensor:
            expected = None
            if self.needs_teacher:
                with torch.no_grad():
                    expected = teacher(x)
            return combine(student(x), expected, y if labels else None)

        return loss

    def describe(self, temperature: float, alpha: float,
                 weights: Mapping[str, float] | None = None) -> str:
        """The label the log and report.md both show."""
        return self.label.format(T=temperature, alpha=alpha, **{**LOSS_WEIGHTS, **(weights or {})})


def _hinton(temperature: float, alpha: float) -> LogitLossFn:
    """Hinton KD; at alpha 1 the label term (weight 0) is not computed at all."""
    if alpha == 1:
        return lambda s, te, y: soft_targets(s, te, None, temperature)
    return lambda s, te, y: hinton_kd(s, te, y, temperature, alpha)


def _rkd_term(weights: Mapping[str, float]) -> FeatureTerm:
    """RKD-DA on the penultimate embeddings: the inputs of the head block."""
    def term(student: list[Tensor], teacher: list[Tensor]) -> Tensor:
        if len(student) < 2:
            raise RecastError("--finetune-loss rkd+kd needs a chain of two blocks or more")
        return rkd(student[-2], teacher[-2], weights["rkd_distance_weight"],
                   weights["rkd_angle_weight"])
    return term


def _at_term(weights: Mapping[str, float]) -> FeatureTerm:
    """AT summed over the chain positions where both blocks output same-size maps."""
    def term(student: list[Tensor], teacher: list[Tensor]) -> Tensor:
        pairs = attention_positions(student, teacher)
        if not pairs:
            raise RecastError("--finetune-loss at+kd: no block of the student and the "
                              "teacher outputs maps of the same size; use kd")
        return sum((attention_transfer(s, t, weights["at_weight"]) for s, t in pairs),
                   student[-1].new_zeros(()))
    return term


NO_HINTS = ("hints (--finetune-loss hint-ce or hint-mse-ce, --method hint): no block of "
            "the student outputs the shape its teacher block does (a narrower student); use kd, or "
            "--finetune-loss at+kd, which compares maps of any width")


def _hint_term(weights: Mapping[str, float]) -> FeatureTerm:
    """The hints (MSE of same-shape block outputs), weighted."""
    def term(student: list[Tensor], teacher: list[Tensor]) -> Tensor:
        hints = hint_loss(student, teacher)
        if hints is None:
            raise RecastError(NO_HINTS)
        return weights["hint_weight"] * hints
    return term


LOSSES: dict[str, LogitLoss] = {
    "mse-ce": LogitLoss("mse-ce", "MSE(teacher logits) + CE(labels)", True,
                        lambda t, a: logit_mse_ce),
    "kd": LogitLoss("kd", "Hinton KD (T={T}, alpha={alpha})", True, _hinton,
                    reads_labels=lambda t, a: a < 1),
    "ce": LogitLoss("ce", "CE(labels), no teacher", False, lambda t, a: labels_only),
    "kd-soft": LogitLoss("kd-soft", "Hinton KD on the teacher's soft targets only (T={T}), "
                         "no labels", True,
                         lambda t, a: lambda s, te, y: soft_targets(s, te, None, t),
                         reads_labels=lambda t, a: False),
    "mse": LogitLoss("mse", "MSE(teacher logits), no labels", True, lambda t, a: logit_mse,
                     reads_labels=lambda t, a: False),
    "rkd+kd": LogitLoss("rkd+kd", "RKD on the penultimate embeddings (distance "
                        "{rkd_distance_weight:g}, angle {rkd_angle_weight:g}) + Hinton KD "
                        "(T={T}, alpha={alpha})", True, _hinton,
                        reads_labels=lambda t, a: a < 1, features=_rkd_term),
    "at+kd": LogitLoss("at+kd", "attention transfer on the block outputs (beta "
                       "{at_weight:g}) + Hinton KD (T={T}, alpha={alpha})", True, _hinton,
                       reads_labels=lambda t, a: a < 1, features=_at_term),
    # a transformation keeps every block's width: the teacher's block outputs are targets
    # for the student's at every position, a signal no logit loss carries
    "hint-ce": LogitLoss("hint-ce", "MSE of the block outputs shaped as the teacher's "
                         "(hints, weight {hint_weight:g}) + CE(labels)", True,
                         lambda t, a: labels_only, features=_hint_term, same_shapes=True),
    # the hints beside the authors' fine-tune loss: the teacher's signal at every block
    # and at the logits
    "hint-mse-ce": LogitLoss("hint-mse-ce", "MSE of the block outputs shaped as the "
                             "teacher's (hints, weight {hint_weight:g}) + MSE(teacher "
                             "logits) + CE(labels)", True, lambda t, a: logit_mse_ce,
                             features=_hint_term, same_shapes=True),
}
# the fine-tune loss of a run without labels when none is chosen
TEACHER_ONLY_DEFAULT = "kd-soft"

# --method baseline -> its loss here (recast/baselines.py trains them)
BASELINES = {"kd": "kd", "kd-mse": "mse-ce", "scratch": "ce", "hint": "hint-ce"}


def baseline_reads_labels(method: str) -> bool:
    """Whether ``--method method`` needs labels: its loss at alpha 1, where a run
    without labels puts all of a KD loss's weight (recast/baselines.py)."""
    return LOSSES[BASELINES[method]].reads_labels(4.0, 1.0)


# (student output, teacher output, student input, teacher input) -> loss; the inputs
# (over the same channels) only for a loss that needs them, else None
BlockLossFn = Callable[[Tensor, Tensor, Tensor | None, Tensor | None], Tensor]


@dataclass(frozen=True)
class BlockLoss:
    """A block-step loss: how the student's activation is held to the teacher's."""

    name: str
    label: str
    # weights (LOSS_WEIGHTS) -> the loss function
    make: Callable[[Mapping[str, float]], BlockLossFn]
    # FSP: the step's input maps too, not only its output
    needs_inputs: bool = False

    def describe(self, weights: Mapping[str, float] | None = None) -> str:
        """The label the log and the report show."""
        return self.label.format(**{**LOSS_WEIGHTS, **(weights or {})})


BLOCK_LOSSES: dict[str, BlockLoss] = {
    "mse": BlockLoss("mse", "MSE of the activations (the authors')",
                     lambda w: lambda s, t, si, ti: F.mse_loss(s, t)),
    "at": BlockLoss("at", "attention transfer (beta {at_weight:g})",
                    lambda w: lambda s, t, si, ti: attention_transfer(s, t, w["at_weight"])),
    "fsp": BlockLoss("fsp", "FSP: Gram matrices of the step's input and output maps",
                     lambda w: lambda s, t, si, ti: fsp_loss(s, t, si, ti),  # type: ignore
                     needs_inputs=True),
    "cosine": BlockLoss("cosine", "1 - cosine similarity of the activations",
                        lambda w: lambda s, t, si, ti: cosine_distance(s, t)),
}
