"""The frozen teacher's forward passes in lower precision: its targets cost less.

A recast reads the teacher on every batch of its block steps, and its KD
fine-tune does too; on DenseNet-40 the teacher's forward costs 3.4x the
student's. Under bfloat16 autocast those passes run on the CPU's bfloat16 units
(AVX512-BF16, AMX) or a GPU's tensor cores. Only the sequential block steps'
targets and the fine-tune's teacher logits are computed so: the student trains
in float32, and the closed-form fits, every accuracy, the feature terms of a
fine-tune loss (hints, AT, RKD), the all-at-once pass and the baselines read the
teacher in float32.
"""

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor, nn

from recast.errors import RecastError
from recast.losses import LOSSES
from recast.settings import RecastConfig


# how a log line or a machine description says a device emulates bfloat16 (the
# benchmark tables read it back from their records)
NO_BFLOAT16 = "no bfloat16 units"


def has_fast_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 convolutions in hardware; elsewhere
    autocast emulates them, slower than float32."""
    if device.type == "cuda":  # Ampere on; older GPUs emulate it
        return torch.cuda.is_available() and \
            torch.cuda.get_device_properties(device).major >= 8
    if device.type == "cpu":  # oneDNN's bfloat16 kernels need AVX512-BF16 or AMX
        return torch.backends.mkldnn.is_available() and bool(
            torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False


def auto_precision(fast_bfloat16: bool, finetune_reads_teacher: bool) -> str:
    """What auto becomes: bfloat16 only where the hardware computes it and the fine-tune
    reads the teacher as well as the block steps. Where only the block steps read it (a
    fifth of the `fast` preset's images, prefixes of the teacher) the saving was within
    the runs' spread: WRN-16-4 -> basic, 948 s against 912 s
    (benchmarks/cifar10-runs.md)."""
    return "bfloat16" if fast_bfloat16 and finetune_reads_teacher else "float32"


def finetune_reads_teacher(settled: RecastConfig) -> bool:
    """Whether a settled config's fine-tune runs the teacher's forward on any batch."""
    return settled.finetune_epochs > 0 and LOSSES[settled.finetune_loss].needs_teacher


def expected_precision(config: RecastConfig, expects_fit: bool, fast_bfloat16: bool) -> str:
    """The teacher precision a run of ``config`` (split, not yet settled) starts with:
    auto decided from the fine-tune it expects, one after a closed-form start where
    ``expects_fit``. The block steps run before the fine-tune is settled, so a fit
    that is later skipped or thrown away leaves this guess standing (the Recaster
    says so)."""
    if config.teacher_precision != "auto":
        return config.teacher_precision
    return auto_precision(fast_bfloat16, finetune_reads_teacher(
        config.settle_finetune(expects_fit)))


def teacher_autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The context a teacher's target forward runs in, on every batch; its outputs
    reach the student's losses through :func:`as_float`. ``auto`` is resolved once
    per run (the Recaster does), not here on the hot path."""
    if precision == "float32":
        return nullcontext()
    if precision != "bfloat16":
        raise RecastError(f"teacher precision {precision!r} is not resolved; pass "
                          f"expected_precision(config, expects_fit, fast_bfloat16) instead")
    return torch.autocast(device.type, dtype=torch.bfloat16)


def as_float(x: Tensor) -> Tensor:
    """A target back in float32, the dtype the student's losses compare in."""
    return x.float() if x.is_floating_point() else x


class TargetChain(nn.Sequential):
    """A teacher chain whose forward (its logits) runs under ``precision``'s autocast.

    Still an ``nn.Sequential`` of the same blocks, so a loss that walks the blocks
    itself (hints) reads them as before, in float32.
    """

    def __init__(self, blocks: nn.Sequential, precision: str) -> None:
        super().__init__(*blocks)
        self.precision = precision

    def forward(self, x: Tensor) -> Tensor:
        with teacher_autocast(self.precision, x.device):
            return as_float(super().forward(x))
