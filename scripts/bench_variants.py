"""The recast recipes scripts/bench_cifar10.py compares: each a share of the budget
spent on block steps and the RecastConfig overrides, and the one the `fast` preset
runs (reported as "recast").

Kept apart from the runner so the recipes read as one table.
"""

from collections.abc import Mapping
from typing import Any

from recast.losses import BASELINES, BLOCK_LOSSES, LOSSES
from recast.settings import RecastConfig

# Recast variants: (fraction of the budget spent on block steps, config overrides).
_WARM = dict(init="teacher", optimizer="adam", lr=1e-3)  # warm-started Adam block steps


def _sgd_finetune(loss: str, lr: float = 0.02, **more: Any) -> dict[str, Any]:
    """Warm-started block steps, then an SGD fine-tune on ``loss`` (weight decay 5e-4);
    each step's accuracy on 2000 test images, as the fast preset measures it."""
    return dict(_WARM, finetune_loss=loss, finetune_optimizer="sgd", finetune_lr=lr,
                finetune_weight_decay=5e-4, step_test_images=2000, **more)


def _solved(loss: str, lr: float = 0.02, **more: Any) -> dict[str, Any]:
    """The closed-form start before every step, then the SGD fine-tune, its warm-up
    pinned (none unless given) as these variants ran before an unset one followed
    the solve (RecastConfig.settle_finetune)."""
    return _sgd_finetune(loss, lr, **{"solve": "target", "finetune_warmup": 0.0, **more})


VARIANTS: dict[str, tuple[float | None, dict[str, Any]]] = {
    # the authors' recipe shortened: 1 epoch per block, Adam, random init
    "published-short": (None, dict(epochs_per_block=1, init="random", optimizer="adam",
                                   lr=1e-3, finetune_loss="mse-ce")),
    # the same with a warm start from the teacher's channels
    "warm": (None, dict(_WARM, epochs_per_block=1, finetune_loss="mse-ce")),
    # warm start, short block steps, then an SGD fine-tune: Hinton KD, logit MSE + CE,
    # at lr 0.05 or a gentler 0.02 that keeps more of the warm start, or labels only
    # (no teacher forward: a pass costs a scratch pass)
    "warm-kd-sgd": (0.2, _sgd_finetune("kd", 0.05)),
    "warm-mse-sgd": (0.2, _sgd_finetune("mse-ce", 0.05)),
    "warm-kd-sgd-lr02": (0.2, _sgd_finetune("kd")),
    "warm-ce-sgd-lr02": (0.2, _sgd_finetune("ce")),
    # plus a closed-form warm start (recast/solve.py) of every target before its SGD;
    # "next" also re-solves the rebuilt next block; "bn" recalibrates BN after each step
    "solve-ce-sgd-lr02": (0.2, _solved("ce")),
    "solve-next-ce-sgd-lr02": (0.2, _solved("ce", solve="target+next")),
    "solve-bn-ce-sgd-lr02": (0.2, _solved("ce", bn_recalibration=2048)),
    "solve-mse-sgd-lr02": (0.2, _solved("mse-ce")),
    "solve-kd-sgd-lr02": (0.2, _solved("kd")),
    # the kd-mse baseline's own fine-tune (logit MSE + CE, SGD at lr 0.05) after the
    # closed-form start: what the warm start adds to the best alternative's recipe
    "solve-mse-sgd": (0.2, _solved("mse-ce", 0.05)),
    # the same with a twentieth of the budget on block steps: the closed form does the
    # warm start's work, and the fine-tune gets 95% of the images
    "solve-mse-sgd-f05": (0.05, _solved("mse-ce", 0.05)),
    # the same with a gentler fine-tune that keeps more of the solved start
    "solve-ce-sgd-lr01": (0.2, _solved("ce", 0.01)),
    # the preset and the closed-form start with the fine-tune's rate ramped up over its
    # first epoch: the first pass at the full rate threw the solved start from 66-79% to
    # 50% on ResNet-56 -> plain (benchmarks/cifar10.md, the pair's reading)
    "warmup-ce-sgd-lr02": (0.2, _sgd_finetune("ce", finetune_warmup=1.0)),
    "solve-warmup-ce-sgd-lr02": (0.2, _solved("ce", finetune_warmup=1.0)),
    # the same with the fine-tune on logit MSE + CE, which after the warm start was worth
    # about a point over CE on DenseNet -> basic (seed 0)
    "solve-warmup-mse-sgd-lr02": (0.2, _solved("mse-ce", finetune_warmup=1.0)),
    # the same with a tenth of the budget on block steps, so the fine-tune gets 90%
    "solve-warmup-mse-sgd-lr02-f10": (0.1, _solved("mse-ce", finetune_warmup=1.0)),
    # the same with a fresh basic target's conv1 set to the principal directions of what
    # its residual path must add (--solve-hidden principal) before conv2 is fitted
    "solve-principal-warmup-ce-sgd-lr02": (0.2, _solved("ce", finetune_warmup=1.0,
                                                        solve_hidden="principal")),
    # both DenseNet -> basic gains together: the principal conv1, then the logit MSE + CE
    # fine-tune
    "solve-principal-warmup-mse-sgd-lr02": (0.2, _solved("mse-ce", finetune_warmup=1.0,
                                                         solve_hidden="principal")),
    # the warm start plus each warm-started target's input convs re-solved on the kept
    # channels of its narrowed input (--solve input: He et al. 2017, ThiNet)
    "input-ce-sgd-lr02": (0.2, _solved("ce", solve="input")),
    # the teacher's block outputs as hints at every block of the same shape (a
    # transformation keeps all widths) after the closed-form start; after the warm
    # start it is loss-hint-ce below
    "solve-hint-sgd-lr02": (0.2, _solved("hint-ce")),
    # the same with the fine-tune's LR warm-up that the closed-form start needs, on CE
    # and beside the authors' logit MSE + CE (hints at every block of a transformation)
    "solve-warmup-hint-sgd-lr02": (0.2, _solved("hint-ce", finetune_warmup=1.0)),
    "solve-warmup-hintmse-sgd-lr02": (0.2, _solved("hint-mse-ce", finetune_warmup=1.0)),
    # the MSE recipe with the teacher only for the first half of the fine-tune, then CE
    # alone (--finetune-teacher-share 0.5; early-stopped KD, Cho and Hariharan 2019): on
    # ResNet-56 -> plain the MSE fine-tune climbed faster early and ended lower, and the
    # second half skips the teacher's forward
    "solve-warmup-mse-sgd-lr02-t50": (0.2, _solved("mse-ce", finetune_warmup=1.0,
                                                   finetune_teacher_share=0.5)),
    # the same hand-over after the principal conv1 (DenseNet -> basic's preset start) and
    # after the warm start alone (the compression pairs' preset start)
    "solve-principal-warmup-mse-sgd-lr02-t50": (0.2, _solved(
        "mse-ce", finetune_warmup=1.0, solve_hidden="principal", finetune_teacher_share=0.5)),
    "warm-mse-sgd-lr02-t50": (0.2, _sgd_finetune("mse-ce", finetune_teacher_share=0.5)),
    # the hand-over on Hinton KD (T=4) instead of the logit MSE: a loss whose gradient
    # stays bounded while the student's logits are far from the teacher's (ResNet-56 ->
    # plain's MSE hand-over lost 2.22 points on one seed and gained 0.11 on another)
    "solve-warmup-kd-sgd-lr02-t50": (0.2, _solved("kd", finetune_warmup=1.0,
                                                  finetune_teacher_share=0.5)),
    # the teacher's forward in a quarter of the fine-tune only: half the hand-over's cost
    # (ResNet-56 -> plain's KD hand-over ran at 1.33x the preset's wall time)
    "solve-warmup-kd-sgd-lr02-t25": (0.2, _solved("kd", finetune_warmup=1.0,
                                                  finetune_teacher_share=0.25)),
    "solve-principal-warmup-kd-sgd-lr02-t50": (0.2, _solved(
        "kd", finetune_warmup=1.0, solve_hidden="principal", finetune_teacher_share=0.5)),
    # the quarter share after the principal conv1: DenseNet's teacher forward costs 3.4x
    # the student's, so its hand-over's wall time falls most with the share
    "solve-principal-warmup-kd-sgd-lr02-t25": (0.2, _solved(
        "kd", finetune_warmup=1.0, solve_hidden="principal", finetune_teacher_share=0.25)),
    # no label read anywhere (--labels none): the fine-tune on the teacher's soft targets
    "nolabels-kd-sgd-lr02": (0.2, _sgd_finetune("kd-soft", labels="none")),
    # all target blocks at once (recast/local.py), then the KD SGD fine-tune
    "local-kd-sgd": (0.1, _sgd_finetune("kd", 0.05, block_training="local")),
    "local-kd-sgd-lr02": (0.1, _sgd_finetune("kd", block_training="local")),
}
# each pair's `fast` variant with the teacher's target forward in bfloat16
# (--teacher-precision bfloat16; its forward 1.5-2.1x as fast on this CPU,
# benchmarks/speed.md)
VARIANTS.update({f"{name}-bf16": (VARIANTS[name][0],
                                  dict(VARIANTS[name][1], teacher_precision="bfloat16"))
                 for name in ("solve-warmup-kd-sgd-lr02-t25",
                              "solve-principal-warmup-kd-sgd-lr02-t25", "warm-ce-sgd-lr02")})
# each transformation pair's fast variant with its KD hand-over at T=8: nearer the
# logit MSE that led the hand-overs on ResNet-20, WRN and DenseNet (the MSE's limit at
# large T), with a gradient still bounded by T where ResNet-56's MSE lost 2.22 points
VARIANTS.update({name.replace("-kd-", "-kd8-"): (VARIANTS[name][0],
                                                 dict(VARIANTS[name][1], kd_temperature=8.0))
                 for name in ("solve-warmup-kd-sgd-lr02-t25-bf16",
                              "solve-principal-warmup-kd-sgd-lr02-t25-bf16")})
# each transformation pair's fast variant with the KD hand-over over half the fine-tune,
# paid for by half the block steps: a half share led a quarter by 0.36 points on
# ResNet-20 but cost wall time; a tenth of the budget on block steps lost 0.04 under the
# MSE fine-tune there and saves their targets' teacher prefixes
VARIANTS.update({name.replace("-t25-", "-t50-f10-"): (0.1, dict(
    VARIANTS[name][1], finetune_teacher_share=0.5))
    for name in ("solve-warmup-kd-sgd-lr02-t25-bf16",
                 "solve-principal-warmup-kd-sgd-lr02-t25-bf16")})
# the transformation pairs' float32 fast variant (the preset's before its bfloat16
# teacher) with each block step also learning the
# teacher's output through the teacher's remaining blocks (--step-output-weight; a
# tenth, because the term's T^2-scaled KL started 5-20x the activation MSE on ResNet-20
# -> plain in a one-off check by hand before any training, not a committed script;
# its block steps took 196-235 s against the float32 variant's 132-155 s, seeds 0-2)
_FLOAT32_KD = VARIANTS["solve-warmup-kd-sgd-lr02-t25"]
VARIANTS["solve-warmup-kd-sgd-lr02-t25-graft"] = (_FLOAT32_KD[0], dict(
    _FLOAT32_KD[1], step_output_weight=0.1))
# one variant per fine-tune loss of the registry (benchmarks/losses.md)
VARIANTS.update({f"loss-{name}": (0.2, _sgd_finetune(name)) for name in LOSSES})
# one per block-step loss of the registry, the fine-tune held at ce
VARIANTS.update({f"block-{name}": (0.2, _sgd_finetune("ce", block_loss=name))
                 for name in BLOCK_LOSSES})

# the hand-over's part, after each preset start
_HALF_TEACHER = ("logit MSE + CE for the first half of the fine-tune, then CE, instead of "
                 "CE throughout")
_KD_FIRST = ("Hinton KD (T=4) for the first {share} of the fine-tune, then CE, instead of CE "
             "throughout")
_KD_HALF = _KD_FIRST.format(share="half")
_KD_NOT_MSE = "Hinton KD (T=4) instead of logit MSE + CE before the hand-over to CE"

# What one change to the recipe adds (issue 14: "measure what each part adds on every
# pair"): (the part, the variant with it, the variant without it)
PARTS: tuple[tuple[str, str, str], ...] = (
    ("closed-form warm start (solve)", "solve-ce-sgd-lr02", "warm-ce-sgd-lr02"),
    ("BN recalibration after each step", "solve-bn-ce-sgd-lr02", "solve-ce-sgd-lr02"),
    ("re-solving the next block too", "solve-next-ce-sgd-lr02", "solve-ce-sgd-lr02"),
    ("KD fine-tune instead of CE", "warm-kd-sgd-lr02", "warm-ce-sgd-lr02"),
    ("logit MSE + CE fine-tune (kd-mse's loss) instead of CE", "loss-mse-ce",
     "warm-ce-sgd-lr02"),
    ("hints in the CE fine-tune", "loss-hint-ce", "warm-ce-sgd-lr02"),
    ("fine-tune LR warm-up (1 epoch)", "warmup-ce-sgd-lr02", "warm-ce-sgd-lr02"),
    ("fine-tune LR warm-up after the closed-form start", "solve-warmup-ce-sgd-lr02",
     "solve-ce-sgd-lr02"),
    ("logit MSE + CE fine-tune after the closed-form start and warm-up",
     "solve-warmup-mse-sgd-lr02", "solve-warmup-ce-sgd-lr02"),
    ("hints in the CE fine-tune after the closed-form start and warm-up",
     "solve-warmup-hint-sgd-lr02", "solve-warmup-ce-sgd-lr02"),
    ("hints beside the logit MSE + CE fine-tune after the closed-form start and warm-up",
     "solve-warmup-hintmse-sgd-lr02", "solve-warmup-mse-sgd-lr02"),
    ("the teacher for the first half of the MSE fine-tune only, then CE",
     "solve-warmup-mse-sgd-lr02-t50", "solve-warmup-mse-sgd-lr02"),
    (_HALF_TEACHER, "solve-warmup-mse-sgd-lr02-t50", "solve-warmup-ce-sgd-lr02"),
    (f"{_HALF_TEACHER}, after the principal conv1", "solve-principal-warmup-mse-sgd-lr02-t50",
     "solve-principal-warmup-ce-sgd-lr02"),
    (f"{_HALF_TEACHER}, after the warm start", "warm-mse-sgd-lr02-t50", "warm-ce-sgd-lr02"),
    (_KD_NOT_MSE, "solve-warmup-kd-sgd-lr02-t50", "solve-warmup-mse-sgd-lr02-t50"),
    (_KD_HALF, "solve-warmup-kd-sgd-lr02-t50", "solve-warmup-ce-sgd-lr02"),
    ("the KD hand-over after a quarter of the fine-tune instead of half",
     "solve-warmup-kd-sgd-lr02-t25", "solve-warmup-kd-sgd-lr02-t50"),
    (_KD_FIRST.format(share="quarter"), "solve-warmup-kd-sgd-lr02-t25",
     "solve-warmup-ce-sgd-lr02"),
    (f"{_KD_NOT_MSE}, after the principal conv1", "solve-principal-warmup-kd-sgd-lr02-t50",
     "solve-principal-warmup-mse-sgd-lr02-t50"),
    (f"{_KD_HALF}, after the principal conv1", "solve-principal-warmup-kd-sgd-lr02-t50",
     "solve-principal-warmup-ce-sgd-lr02"),
    (f"{_KD_FIRST.format(share='quarter')}, after the principal conv1",
     "solve-principal-warmup-kd-sgd-lr02-t25", "solve-principal-warmup-ce-sgd-lr02"),
    ("the teacher's target forward in bfloat16 instead of float32",
     "solve-warmup-kd-sgd-lr02-t25-bf16", "solve-warmup-kd-sgd-lr02-t25"),
    ("the teacher's target forward in bfloat16 instead of float32, after the principal "
     "conv1", "solve-principal-warmup-kd-sgd-lr02-t25-bf16",
     "solve-principal-warmup-kd-sgd-lr02-t25"),
    ("the teacher's target forward in bfloat16 instead of float32, warm start and CE "
     "fine-tune", "warm-ce-sgd-lr02-bf16", "warm-ce-sgd-lr02"),
    ("the KD hand-over at T=8 instead of T=4", "solve-warmup-kd8-sgd-lr02-t25-bf16",
     "solve-warmup-kd-sgd-lr02-t25-bf16"),
    ("the KD hand-over at T=8 instead of T=4, after the principal conv1",
     "solve-principal-warmup-kd8-sgd-lr02-t25-bf16",
     "solve-principal-warmup-kd-sgd-lr02-t25-bf16"),
    ("the KD hand-over over half the fine-tune, a tenth of the budget on block steps "
     "(instead of a quarter and a fifth)", "solve-warmup-kd-sgd-lr02-t50-f10-bf16",
     "solve-warmup-kd-sgd-lr02-t25-bf16"),
    ("the KD hand-over over half the fine-tune, a tenth of the budget on block steps "
     "(instead of a quarter and a fifth), after the principal conv1",
     "solve-principal-warmup-kd-sgd-lr02-t50-f10-bf16",
     "solve-principal-warmup-kd-sgd-lr02-t25-bf16"),
    ("each block step also learning the teacher's output through its remaining blocks",
     "solve-warmup-kd-sgd-lr02-t25-graft", "solve-warmup-kd-sgd-lr02-t25"),
    ("re-solving each warm-started target's input convs on the kept channels",
     "input-ce-sgd-lr02", "warm-ce-sgd-lr02"),
    ("principal directions in a fresh target's conv1 before the fit",
     "solve-principal-warmup-ce-sgd-lr02", "solve-warmup-ce-sgd-lr02"),
    ("principal conv1 under the logit MSE + CE fine-tune",
     "solve-principal-warmup-mse-sgd-lr02", "solve-warmup-mse-sgd-lr02"),
)

# The variant reported as "recast" on each kind of pair, or on a pair named here (a
# pair's name overrides its kind's): the one the `fast` preset runs there. Its --solve
# auto fits every step of a transformation pair (each changes its block's kind) and no
# step of a compression pair, and its unset warm-up and its fine-tune loss (auto: KD
# for the first quarter, then CE, after a fit; else CE) follow the fit. Its --solve-hidden
# principal acts only on a fitted basic target no warm start fills (here dense ->
# basic); on the other pairs the runs without it are the preset's. Its
# --teacher-precision auto is bfloat16 on a CPU with AVX512-BF16 or AMX (the one these
# tables' walls were measured on) where the KD fine-tune reads the teacher, the
# transformation pairs, and float32 after a CE fine-tune; on a CPU without bfloat16
# units it is float32 throughout, and the preset runs as the -bf16 variant's float32
# twin (tests/test_settings.py holds each pair's preset and variant together).
HEADLINE_VARIANTS: dict[str, str] = {
    "compression": "warm-ce-sgd-lr02",
    "transformation": "solve-warmup-kd-sgd-lr02-t25-bf16",
    "densenet40-basic": "solve-principal-warmup-kd-sgd-lr02-t25-bf16"}


def float32_twin(variant: str) -> str:
    """A -bf16 variant's float32 twin: the same recipe, the teacher read in float32."""
    return variant.removesuffix("-bf16")


def headline_variant(headlines: Mapping[str, str], pair: str, kind: str,
                     fast_bfloat16: bool = True) -> str:
    """The variant reported as "recast" on ``pair``: its own entry, else its kind's. On
    a CPU without bfloat16 units the preset's --teacher-precision auto settles float32,
    so there it runs as the variant's float32 twin (the name without -bf16)."""
    name = headlines[pair] if pair in headlines else headlines[kind]
    return name if fast_bfloat16 else float32_twin(name)


def reads_teacher(method: str) -> bool:
    """Whether a method's runs learn from the teacher: every recast variant (and the
    method "recast" itself) and each baseline whose loss needs the teacher's outputs
    (scratch does not; pruning + KD does)."""
    return method not in BASELINES or LOSSES[BASELINES[method]].needs_teacher


def uses_hints(method: str) -> bool:
    """Whether a method's loss compares block outputs of the teacher's own shape."""
    if method.startswith("recast:"):
        loss = VARIANTS[method.split(":")[1]][1].get("finetune_loss",
                                                      RecastConfig.finetune_loss)
    else:
        loss = BASELINES.get(method)
    return loss is not None and LOSSES[loss].same_shapes
