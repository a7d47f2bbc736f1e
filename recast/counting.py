"""Params, mults and MACs, in honest units.

fvcore counts multiply-accumulates (MACs), not FLOPs. ``mults`` are the
multiplies of conv and matrix-multiply ops only, as the recasting paper
counts them (its Table 3); ``macs`` is fvcore's total, which also counts
batch norm, pooling and other ops it has handles for. The planner sizes many
candidate blocks, so :func:`module_size` and :func:`spec_size` count params and
mults the same way without fvcore's trace (on the meta device where they can).
"""

import functools
import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from blocks import BlockSpec
from recast.errors import PlanError

MULT_OPS = frozenset({"conv", "linear", "addmm", "matmul", "bmm", "mm", "einsum",
                      "baddbmm", "scaled_dot_product_attention"})


Size = tuple[int, int, tuple[int, ...]]  # params, mults, output shape


@dataclass(frozen=True)
class Cost:
    """What one module costs on one input."""

    params: int
    mults: int
    macs: int


def count_params(module: nn.Module) -> int:
    """Parameters, each shared tensor counted once."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def count_costs(
    module: nn.Module, example: torch.Tensor, children: bool = False
) -> tuple[Cost, dict[str, Cost]]:
    """Cost of ``module`` on ``example`` (batch 1), and of each direct child.

    One fvcore trace serves the whole model and its children, so a block
    chain is counted in one pass.
    """
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*")
    module = module.eval()
    analysis = FlopCountAnalysis(module, (example,))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    with torch.no_grad():
        per_op = analysis.by_module_and_operator()
    total = _cost(module, per_op.get("", {}))
    parts = {}
    if children:
        for name, child in module.named_children():
            parts[name] = _cost(child, per_op.get(name, {}))
    return total, parts


def _cost(module: nn.Module, ops: dict[str, int]) -> Cost:
    mults = sum(count for op, count in ops.items() if op in MULT_OPS)
    return Cost(count_params(module), int(mults), int(sum(ops.values())))


def module_size(module: nn.Module, in_shape: tuple[int, ...]) -> Size:
    """Params, mults (conv and matrix-multiply multiplies, as the report counts them)
    and output shape of ``module`` on one batch-1 input; run on the meta device (shapes
    only) where the module allows it, for speed."""
    was_training = module.training
    module.eval()
    meta = {name: torch.empty_like(t, device="meta") for name, t in
            [*module.named_parameters(), *module.named_buffers()]}
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = functional_call(module, meta, (torch.zeros((1, *in_shape[1:]), device="meta"),))
    except Exception:  # noqa: BLE001  (e.g. a constant tensor of its own): count for real
        device = next(module.parameters(), torch.zeros(0)).device
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = module(torch.zeros((1, *in_shape[1:]), device=device))
    finally:
        module.train(was_training)
    return count_params(module), int(counter.get_total_flops()) // 2, tuple(out.shape)


@functools.lru_cache(maxsize=4096)
def spec_size(spec: BlockSpec, in_shape: tuple[int, ...]) -> Size:
    """A target's size, built and run on the meta device (shapes only); its convs and
    linears are counted by hooks, far faster than a dispatch-level counter."""
    try:
        with torch.device("meta"):
            module = spec.build().eval()
    except ValueError as exc:
        raise PlanError(str(exc)) from exc
    mults = 0

    def count(layer: nn.Module, _: Any, out: torch.Tensor) -> None:
        nonlocal mults
        per_output = layer.in_features if isinstance(layer, nn.Linear) else \
            layer.in_channels // layer.groups * math.prod(layer.kernel_size)
        mults += out.numel() * per_output

    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            layer.register_forward_hook(count)
    with torch.no_grad():
        out = module(torch.zeros((1, *in_shape[1:]), device="meta"))
    return count_params(module), mults, tuple(out.shape)
