"""Every setting of a recast in one place: the fields and their checks.

A field's metadata carries its command-line help and choices, so recast/flags.py
derives the CLI flags from :class:`RecastConfig` and a new knob is one field
here. The checks run before anything else does (their numeric rules are in
recast/value_rules.py); the named presets are in recast/presets.py.
"""

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable

from recast.errors import RecastError
from recast.losses import BLOCK_LOSSES, LOSS_WEIGHTS, LOSSES
from recast.training import Schedule
from recast.value_rules import COUNT, NON_NEGATIVE, NON_NEGATIVE_COUNT, POSITIVE, SHARE, \
    UNIT, count, non_negative, non_negative_count, positive, share, unit


def setting(help: str, choices: tuple[str, ...] | None = None,
            check: Callable[[Any], bool] | None = None, rule: str = "",
            flag: bool = True) -> dict[str, Any]:
    """Metadata of a config field: its --flag help, choices and validity rule."""
    return {"help": help, "choices": choices, "check": check, "rule": rule, "flag": flag}


# --finetune-loss auto after a closed-form start: Hinton KD, handed over to CE after a
# quarter of the fine-tune (above the preset's CE on every seed of ResNet-20, ResNet-56
# and DenseNet-40 -> plain/basic; benchmarks/cifar10.md)
AUTO_LOSS, AUTO_SHARE = "kd", 0.25


@dataclass
class RecastConfig:
    """Every knob of a recast; saved to config.json with the run."""

    epochs_per_block: float = field(default=1.0, metadata=setting(
        "epochs of images per recast step (fractions allowed)", check=non_negative,
        rule=NON_NEGATIVE))
    finetune_epochs: float = field(default=5.0, metadata=setting(
        "epochs of images for the fine-tune", check=non_negative, rule=NON_NEGATIVE))
    lr: float = field(default=1e-3, metadata=setting(
        "learning rate of the block steps (and the fine-tune unless --finetune-lr)",
        check=positive, rule=POSITIVE))
    finetune_lr: float | None = field(default=None, metadata=setting(
        "learning rate of the fine-tune", check=positive, rule=POSITIVE))
    optimizer: str = field(default="adam", metadata=setting(
        "optimiser of the block steps", choices=("adam", "sgd")))
    scheduler: str = field(default="cosine", metadata=setting(
        "learning-rate schedule", choices=("cosine", "step", "constant")))
    step_size: float = field(default=20.0, metadata=setting(
        "epochs between tenfold drops (--scheduler step)", check=positive, rule=POSITIVE))
    weight_decay: float = field(default=0.0, metadata=setting(
        "weight decay of the block steps", check=non_negative, rule=NON_NEGATIVE))
    batch_size: int = field(default=128, metadata=setting(
        "training batch size", check=count, rule=COUNT))
    freeze_prefix: bool = field(default=False, metadata=setting(
        "train only block i and i+1 at step i"))
    init: str = field(default="teacher", metadata=setting(
        "warm start target blocks from the teacher's channels, or not",
        choices=("teacher", "random")))
    solve: str = field(default="none", metadata=setting(
        "closed-form warm start before each step's SGD: target fits the new block's last "
        "conv to the teacher block's pre-activation by least squares; target+next also "
        "re-solves the rebuilt next block's input conv on the kept channels; auto: target "
        "on the steps that change a block's kind (as basic -> conv), none on "
        "those that keep it; input instead re-solves a warm-started target's input "
        "convs on the channels its narrowed input kept (He et al. 2017, ThiNet; not "
        "a conv started from a basic block's shortcut)",
        choices=("none", "auto", "target", "target+next", "input")))
    solve_hidden: str = field(default="random", metadata=setting(
        "with --solve, a basic target no warm start filled: its conv1 as built (random), "
        "or (principal) the leading directions of what its residual path must add to "
        "the shortcut, each with its negation, before conv2 is fitted (a preset's "
        "principal gives way when the run makes no closed-form start)",
        choices=("random", "principal")))
    bn_recalibration: int = field(default=0, metadata=setting(
        "re-estimate the student's BN statistics on this many training images after each "
        "step (0: off)", check=non_negative, rule=NON_NEGATIVE))
    step_test_images: int = field(default=0, metadata=setting(
        "test images the accuracy after each sequential block step is measured on, "
        "whole batches spread evenly over the test set (0: all); the fine-tune and the "
        "finished student are measured on all",
        check=non_negative_count, rule=NON_NEGATIVE_COUNT))
    step_output_weight: float = field(default=0.0, metadata=setting(
        "weight of a term at each sequential block step that runs the student's blocks on "
        "through the teacher's remaining blocks and matches the teacher's output there "
        "(soft KD at --kd-temperature, no labels), so a step learns what its block's error "
        "does downstream, not only its activation gap (network grafting, Shen et al. "
        "2021); 0: off, the authors'", check=non_negative, rule=NON_NEGATIVE))
    block_loss: str = field(default="mse", metadata=setting(
        "loss of the block steps, student vs teacher activations: "
        + "; ".join(f"{k}: {v.describe()}" for k, v in BLOCK_LOSSES.items()),
        choices=tuple(BLOCK_LOSSES)))
    seed: int = field(default=0, metadata=setting("random seed", flag=False))
    finetune_loss: str = field(default="mse-ce", metadata=setting(
        "loss of the fine-tune: " + "; ".join(f"{k}: {v.label}" for k, v in LOSSES.items())
        + f"; auto: Hinton KD for the first {AUTO_SHARE:g} of the fine-tune's images, "
        "then CE, after a kept --solve fit, else CE throughout; with "
        "--finetune-teacher-share under 1, KD for that share either way",
        choices=(*LOSSES, "auto")))
    finetune_optimizer: str | None = field(default=None, metadata=setting(
        "optimiser of the fine-tune (default: as the block steps)", choices=("adam", "sgd")))
    finetune_weight_decay: float | None = field(default=None, metadata=setting(
        "weight decay of the fine-tune", check=non_negative, rule=NON_NEGATIVE))
    finetune_warmup: float | None = field(default=None, metadata=setting(
        "epochs over which the fine-tune's learning-rate schedule is scaled by a ramp "
        "from 0 to 1 (0: off; unset: 1 after a closed-form start, else 0)",
        check=non_negative, rule=NON_NEGATIVE))
    finetune_teacher_share: float = field(default=1.0, metadata=setting(
        "share of the fine-tune's images that learn on --finetune-loss; the rest learn on "
        "CE(labels) alone and skip the teacher's forward (distillation stopped early, "
        "Cho and Hariharan 2019); 1 leaves it to --finetune-loss auto, so use "
        "--finetune-loss kd for KD throughout", check=share, rule=SHARE))
    teacher_precision: str = field(default="float32", metadata=setting(
        "precision of the teacher's forward for the sequential block steps' targets and "
        "the fine-tune's teacher logits: bfloat16 runs it under autocast (faster on CPUs "
        "with AVX512-BF16 or AMX and GPUs from Ampere on, slower elsewhere); auto: "
        "bfloat16 where the device has it and the fine-tune reads the teacher too (the "
        "fast preset's), else float32. The student, the fits, every "
        "accuracy, feature terms (hints, AT, RKD), --step-output-weight's term, "
        "--block-training local and the baselines stay float32",
        choices=("float32", "bfloat16", "auto")))
    kd_temperature: float = field(default=4.0, metadata=setting(
        "Hinton KD temperature (also that of --step-output-weight's term)", check=positive,
        rule=POSITIVE))
    kd_alpha: float = field(default=0.9, metadata=setting(
        "Hinton KD weight of the soft targets", check=unit, rule=UNIT))
    at_weight: float = field(default=LOSS_WEIGHTS["at_weight"], metadata=setting(
        "attention transfer weight beta (--block-loss at, --finetune-loss at+kd): beta/2 "
        "times the mean squared gap of the normalised attention maps, per position",
        check=non_negative, rule=NON_NEGATIVE))
    rkd_distance_weight: float = field(
        default=LOSS_WEIGHTS["rkd_distance_weight"], metadata=setting(
            "RKD distance-loss weight (--finetune-loss rkd+kd)", check=non_negative,
            rule=NON_NEGATIVE))
    rkd_angle_weight: float = field(default=LOSS_WEIGHTS["rkd_angle_weight"], metadata=setting(
        "RKD angle-loss weight (--finetune-loss rkd+kd)", check=non_negative,
        rule=NON_NEGATIVE))
    hint_weight: float = field(default=LOSS_WEIGHTS["hint_weight"], metadata=setting(
        "weight of the hints (--finetune-loss hint-ce, hint-mse-ce): the mean over the "
        "same-shape block outputs of their MSE to the teacher's", check=non_negative,
        rule=NON_NEGATIVE))
    block_training: str = field(default="sequential", metadata=setting(
        "sequential: one block after another through the prefix (the authors'); local: "
        "all target blocks in one pass, each on its own input",
        choices=("sequential", "local")))
    budget_epochs: float | None = field(default=None, metadata=setting(
        "epochs of images for the whole recast, split between block steps and fine-tune "
        "(replaces --epochs-per-block and --finetune-epochs)", check=positive,
        rule=POSITIVE))
    block_fraction: float = field(default=0.2, metadata=setting(
        "share of --budget-epochs spent on block steps", check=unit, rule=UNIT))
    labels: str = field(default="given", metadata=setting(
        "none: never read a label: block steps as always, the fine-tune on the teacher's "
        "outputs only (default loss kd-soft); needs --teacher. Data without labels sets it",
        choices=("given", "none")))

    def split(self, steps: int) -> "RecastConfig":
        """This config with its budget turned into per-block and fine-tune epochs:
        the one place the budget split is computed."""
        if self.budget_epochs is None:
            return self
        blocks = self.budget_epochs * self.block_fraction
        return replace(self, epochs_per_block=blocks / max(1, steps),
                       finetune_epochs=self.budget_epochs - blocks, budget_epochs=None)

    def total_epochs(self, steps: int) -> float:
        """Epochs of images the whole recast sees: what a baseline gets to compare."""
        if self.budget_epochs is not None:
            return self.budget_epochs
        return self.epochs_per_block * steps + self.finetune_epochs

    def solve_mode(self, kind: str, target: str) -> str:
        """What --solve does at the step that turns a ``kind`` block into ``target``:
        auto fits only a change of kind, where the warm start keeps least of the
        teacher's block (it won on ResNet-56 -> plain and DenseNet -> basic); where the
        warm start copies the block's own kind the fit cost accuracy (WRN basic ->
        basic; benchmarks/cifar10.md)."""
        if self.solve == "auto":
            return "target" if kind != target else "none"
        return self.solve

    @property
    def solves_targets(self) -> bool:
        """Whether sequential block steps may start from a closed-form fit of the
        target, the start --solve-hidden shapes."""
        return self.solve not in ("none", "input") and self.block_training == "sequential"

    def settle_finetune(self, solved: bool) -> "RecastConfig":
        """This config with what follows the block steps decided: an unset warm-up, one
        epoch after a closed-form start (on ResNet-56 -> plain it lifted the solved
        start's end by 1.4 points, seed 0), a tenth of a shorter fine-tune (the ramp
        scales the whole schedule, so a ramp as long as the phase would never reach the
        rate), else none; and --finetune-loss auto, KD handed over to CE after a
        closed-form start (or at a given share), else CE."""
        settled = self
        if self.finetune_warmup is None:
            warmup = min(1.0, self.finetune_epochs / 10) if solved else 0.0
            settled = replace(settled, finetune_warmup=warmup)
        if self.finetune_loss == "auto":
            share = self.finetune_teacher_share
            if share == 1 and solved:
                share = AUTO_SHARE
            settled = replace(settled, finetune_loss=AUTO_LOSS if share < 1 else "ce",
                              finetune_teacher_share=share)
        return settled

    @property
    def loss_to_check(self) -> str:
        """The fine-tune loss the checks before the run hold to: auto may become
        Hinton KD, which reads labels and the teacher, so it is checked as KD."""
        return AUTO_LOSS if self.finetune_loss == "auto" else self.finetune_loss

    def block_schedule(self) -> Schedule:
        return Schedule(self.epochs_per_block, self.lr, self.optimizer, self.scheduler,
                        self.step_size, weight_decay=self.weight_decay)

    def finetune_schedule(self) -> Schedule:
        decay = self.weight_decay if self.finetune_weight_decay is None \
            else self.finetune_weight_decay
        return Schedule(self.finetune_epochs, self.finetune_lr or self.lr,
                        self.finetune_optimizer or self.optimizer, self.scheduler,
                        self.step_size, weight_decay=decay,
                        warmup=self.finetune_warmup or 0.0)  # unsettled: none

    def validate(self) -> "RecastConfig":
        """Refuse any setting outside its range, naming its flag; returns self."""
        for f in fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if value is None:
                continue
            if meta.get("choices") and value not in meta["choices"]:
                raise RecastError(f"{flag_name(f.name)} {value!r} is not one of: "
                                  f"{', '.join(meta['choices'])}")
            if meta.get("check") and not meta["check"](value):
                raise RecastError(f"{flag_name(f.name)} {value!r} must be {meta['rule']}")
        if self.labels == "none" and self.finetune_loss == "auto":
            raise RecastError("--finetune-loss auto ends on CE(labels), but the run has none "
                              "(--labels none, or data without labels); use --finetune-loss "
                              "kd-soft or mse, which learn the teacher's outputs only")
        loss = LOSSES[self.loss_to_check]
        if self.labels == "none" and loss.reads_labels(self.kd_temperature, self.kd_alpha):
            alpha = f" at --kd-alpha {self.kd_alpha}" \
                if not loss.reads_labels(self.kd_temperature, 1.0) else ""
            raise RecastError(f"--finetune-loss {loss.name}{alpha} reads labels, but the run "
                              f"has none (--labels none, or data without labels); use "
                              f"--finetune-loss kd-soft or mse, which learn the teacher's "
                              f"outputs only{' (or --kd-alpha 1)' if alpha else ''}")
        if self.finetune_teacher_share < 1:
            self._check_handover(loss.name, loss.needs_teacher)
        if self.solve_hidden != "random" and not self.solves_targets:
            raise RecastError(f"--solve-hidden {self.solve_hidden} shapes the closed-form "
                              f"start of sequential block steps; add --solve auto (or "
                              f"target) and keep --block-training sequential")
        if self.step_output_weight and self.block_training != "sequential":
            raise RecastError("--step-output-weight acts on sequential block steps; drop it "
                              "or use --block-training sequential")
        if self.solve == "input" and self.init == "random":
            raise RecastError("--solve input re-solves warm-started targets, and --init "
                              "random starts none; drop one of them")
        return self

    def _check_handover(self, loss: str, reads_teacher: bool) -> None:
        """Refuse a hand-over from the teacher to the labels that cannot happen."""
        handing = "--finetune-teacher-share hands the fine-tune over from the teacher to " \
                  "CE(labels), but"
        if self.labels == "none":
            raise RecastError(f"{handing} the run has no labels; drop "
                              f"--finetune-teacher-share")
        if not reads_teacher:
            raise RecastError(f"{handing} --finetune-loss {loss} never reads the teacher; "
                              f"add --finetune-loss mse-ce (or kd, or auto), or drop "
                              f"--finetune-teacher-share")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def step_images(block_training: str, step_test_images: int) -> int:
    """Test images the accuracy after a block step is measured on (0: all): the subset
    applies to sequential steps only; the all-at-once pass always measures on all.
    Takes the two fields, not a config, so stored run records can ask too."""
    return step_test_images if block_training == "sequential" else 0


def flag_name(name: str) -> str:
    """The command-line flag of a config field."""
    return "--" + name.replace("_", "-")
