"""Params, mults and MACs, in honest units.

fvcore counts multiply-accumulates (MACs), not FLOPs. ``mults`` are the
multiplies of conv and matrix-multiply ops only, as the recasting paper
counts them (its Table 3); ``macs`` is fvcore's total, which also counts
batch norm, pooling and other ops it has handles for.
"""

import logging
import warnings
from dataclasses import dataclass

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

MULT_OPS = frozenset({"conv", "linear", "addmm", "matmul", "bmm", "mm", "einsum",
                      "baddbmm", "scaled_dot_product_attention"})


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
