"""BN running statistics re-estimated from data, after weights change under them.

A BN's running statistics describe the activations it saw; a warm start, a
fit or a narrowed input makes them stale. ``recalibrate_bn`` averages fresh
ones over many batches (after a step, --bn-recalibration); ``match_batch_statistics``
sets each BN exactly to one batch's (before a closed-form fit, recast/solve.py).
"""

import itertools
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from recast.errors import RecastError
from recast.modes import held_in_eval

_BatchNorm = nn.modules.batchnorm._BatchNorm


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable, max_batches: int = 200,
                   device: torch.device | str | None = None) -> int:
    """Re-estimate every BN's running statistics on ``batches``; returns images used.

    Changed weights leave statistics of activations that no longer occur. They
    are averaged afresh (momentum None) over up to ``max_batches`` batches of
    tensors or (x, y) pairs, BNs in train mode and the rest in eval mode (no
    dropout); momentum and modes are restored.
    """
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    batches = iter(batches)
    first = next(batches, None)
    if first is None or max_batches < 1:
        raise RecastError("recalibrate_bn got no batches; pass a loader that yields images")
    device = device or next(model.parameters(), torch.zeros(0)).device
    momenta = [norm.momentum for norm in norms]
    images = 0
    with held_in_eval(model):
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
            norm.train()
        try:
            for batch in itertools.islice(itertools.chain([first], batches), max_batches):
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                model(x.to(device))
                images += len(x)
        finally:
            for norm, momentum in zip(norms, momenta):
                norm.momentum = momentum
    return images


@torch.no_grad()
def match_batch_statistics(block: nn.Module, inputs: Tensor) -> None:
    """Set every BN's running statistics in ``block`` to those ``inputs`` give it.

    A fit runs in eval mode, so it reads hidden features through the running
    statistics; training reads them through the batch's. A random or narrowed
    conv keeps BN's initial mean 0 and variance 1 while its outputs vary far
    less (variance 0.003-0.4 on DenseNet -> basic): the fit then learned on
    features training never sees, ended above the unfitted block's MSE in train
    mode and grew its filters 3-80x, which SGD barely moves
    (benchmarks/fit-diagnosis.md). Each BN, in block
    order, gets the biased statistics train mode divides by. Runs ``block`` on
    ``inputs`` in eval mode: a block that changes its input in place changes
    ``inputs``.
    """
    def from_input(bn: nn.Module, args: tuple[Tensor, ...]) -> None:
        var, mean = torch.var_mean(args[0].transpose(0, 1).flatten(1), dim=1, unbiased=False)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)

    hooks = [m.register_forward_pre_hook(from_input) for m in block.modules()
             if isinstance(m, _BatchNorm) and m.running_mean is not None]
    try:
        with held_in_eval(block):
            block(inputs)
    finally:
        for hook in hooks:
            hook.remove()
