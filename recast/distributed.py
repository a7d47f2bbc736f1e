"""torchrun support: one process per device, each training on its share of every batch.

Under ``torchrun`` (WORLD_SIZE > 1) every process builds the same model from
the same seed and walks the same shuffled batches (the loaders share a seed);
each trains on its slice of a batch and the gradients are averaged across
processes, which is what DistributedDataParallel computes. BN running
statistics are averaged at the end of every pass, so all processes hold the
same model. Only rank 0 writes files and logs; the others wait on a barrier
where they must read what it wrote. gloo on CPU, NCCL on CUDA. A single
process (plain ``recast``) does none of this.
"""

import os
from typing import Callable, Iterable, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from recast.errors import RecastError

T = TypeVar("T")


def start() -> None:
    """Join the process group torchrun describes, once; nothing without torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl" if cuda else "gloo")


def size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """The process that writes files and logs."""
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shard(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """This process's slice of a global batch (all of it when there is one process,
    or when the batch is too small to share)."""
    if size() == 1 or len(x) < size():
        return x, y
    return x[rank()::size()], y[rank()::size()]


def any_true(flag: bool) -> bool:
    """Whether ``flag`` holds on any process: all stop together or none does."""
    if size() == 1:
        return flag
    device = torch.device("cuda", local_rank()) if dist.get_backend() == "nccl" else None
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value)
    return bool(value.item())


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Every gradient averaged over processes, in one all-reduce of one flat buffer
    (one call per parameter would pay the network's latency a hundred times a step)."""
    if size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= size()
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view(grad.shape))
        offset += grad.numel()


def average_buffers(module: nn.Module | None) -> None:
    """BN running statistics averaged over processes (counters left as they are)."""
    if size() == 1 or module is None:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer /= size()


def on_main(action: Callable[[], T]) -> T | None:
    """Run ``action`` on rank 0 only; if it fails there, every process stops (the others
    would otherwise wait forever for a rank that has given up)."""
    result, error = None, None
    if is_main():
        try:
            result = action()
        except Exception as exc:  # re-raised below, on rank 0 as it was
            error = exc
    if any_true(error is not None):
        if error is not None:
            raise error
        raise RecastError("rank 0 stopped with an error (its message is above)")
    return result
