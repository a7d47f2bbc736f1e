"""Train/eval modes held for a while: a fit or a statistics pass runs its modules in
eval mode and gives each submodule back the mode it had, whatever happens."""

from contextlib import contextmanager
from typing import Iterator

from torch import nn


@contextmanager
def held_in_eval(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` (and every submodule) in eval mode; restore each one's own mode."""
    modes = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode
