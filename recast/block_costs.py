"""Per-block costs of a walked chain, for `recast inspect`'s block table."""

from typing import Any


def fill_costs(chain: Any) -> None:
    """Set every block's ``macs`` and ``mults`` from one count over the whole chain."""
    import torch

    from recast.counting import count_costs

    _, parts = count_costs(chain.as_module(), torch.randn(chain.input_shape), children=True)
    for block in chain.blocks:
        cost = parts[str(block.index)]
        block.macs, block.mults = cost.macs, cost.mults
