"""The named presets and how a run's settings are put together from one.

A preset is a starting point, every explicitly given setting overrides it, and
the result is checked (recast/settings.py holds the fields and their checks).
"""

from dataclasses import replace
from typing import Any

from recast.errors import RecastError
from recast.losses import TEACHER_ONLY_DEFAULT
from recast.settings import RecastConfig

PRESETS: dict[str, dict[str, Any]] = {
    # the authors' CIFAR schedule (METHOD.md): for GPU users
    "paper": dict(epochs_per_block=60, finetune_epochs=100, lr=1e-3, optimizer="adam",
                  scheduler="step", step_size=20, batch_size=64, init="random"),
    # our CPU-budget default: on each pair the recast variant benchmarks/cifar10.md
    # reports as "recast" (scripts/bench_variants.py HEADLINE_VARIANTS;
    # tests/test_settings.py): a closed-form start where a step changes kind, its
    # fresh basic conv1s principal (dropped by make_config when nothing is fitted),
    # and after such a start KD handed over to CE (--finetune-loss auto), else CE;
    # each step's accuracy on 2000 test images (a whole-set pass cost more than
    # an early step's training: ResNet-56's first step, 13.0 s against 4.5 s); the
    # teacher's target forward in bfloat16 where the hardware has it and the KD
    # fine-tune reads the teacher (--teacher-precision auto; against float32 over 3
    # seeds, benchmarks/cifar10.md's parts tables: ResNet-20 -0.13 points at 0.98x
    # the wall time, ResNet-56 +0.01 at 0.85x, DenseNet-40 -0.11 at 0.83x)
    "fast": dict(budget_epochs=18, block_fraction=0.2, lr=1e-3, optimizer="adam",
                 scheduler="cosine", batch_size=128, init="teacher", finetune_loss="auto",
                 finetune_optimizer="sgd", finetune_lr=0.02, finetune_weight_decay=5e-4,
                 solve="auto", solve_hidden="principal", step_test_images=2000,
                 teacher_precision="auto"),
    # seconds: for tests and the quick start
    "smoke": dict(epochs_per_block=0.1, finetune_epochs=0.25, lr=1e-3, optimizer="adam",
                  scheduler="cosine", batch_size=64, init="teacher"),
}


def make_config(preset: str, overrides: dict[str, Any], seed: int = 0) -> RecastConfig:
    """The preset, then every explicitly given setting; validated."""
    if preset not in PRESETS:
        raise RecastError(f"unknown --preset {preset!r}; use one of {', '.join(PRESETS)}")
    settings = dict(PRESETS[preset])
    given = {k: v for k, v in overrides.items() if v is not None}
    if "epochs_per_block" in given or "finetune_epochs" in given:
        settings.pop("budget_epochs", None)  # explicit epochs replace the preset's budget
    settings.update(given)
    settings["seed"] = seed
    config = RecastConfig(**settings)
    if "solve_hidden" not in given and not config.solves_targets:
        config = replace(config, solve_hidden="random")  # the preset's needs a fit to shape
    if config.labels == "none":
        return without_labels(config, loss_chosen="finetune_loss" in given)
    return config.validate()


def without_labels(config: RecastConfig, loss_chosen: bool) -> RecastConfig:
    """``config`` for a run that reads no label: unless the user chose a fine-tune loss,
    the preset's gives way to one on the teacher's outputs only; validated."""
    loss = config.finetune_loss if loss_chosen else TEACHER_ONLY_DEFAULT
    return replace(config, labels="none", finetune_loss=loss).validate()
