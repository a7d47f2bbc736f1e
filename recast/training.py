"""The training loops shared by teacher training, recasting and fine-tuning.

Budgets are counted in epochs that may be fractional (``0.5`` = half the
training set), so methods can be compared at an equal number of images seen.
"""

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from recast import distributed
from recast.errors import NonFiniteLoss, RecastError
from recast.progress import Progress


@dataclass
class Schedule:
    """Optimiser and learning-rate schedule for one training phase."""

    epochs: float
    lr: float
    optimizer: str = "adam"  # adam | sgd
    scheduler: str = "cosine"  # cosine | step | constant
    step_size: float = 20.0  # epochs, for scheduler='step'
    gamma: float = 0.1
    weight_decay: float = 0.0
    momentum: float = 0.9
    warmup: float = 0.0  # epochs of a linear 0 -> 1 ramp multiplying the schedule


def make_optimizer(params: Iterable[nn.Parameter], schedule: Schedule,
                   total_batches: int, batches_per_epoch: int
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Optimiser plus a per-batch LR schedule (cosine, step or constant), scaled by a
    linear ramp from 0 to 1 over the first ``schedule.warmup`` epochs: a fresh
    optimiser's first steps at a large rate move furthest from the start. The ramp
    multiplies the schedule, so a ramp as long as the phase never reaches the rate."""
    params = [p for p in params if p.requires_grad]
    if schedule.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(
            params, lr=schedule.lr, weight_decay=schedule.weight_decay)
    elif schedule.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=schedule.lr, momentum=schedule.momentum,
                              nesterov=True, weight_decay=schedule.weight_decay)
    else:
        raise RecastError(f"unknown --optimizer {schedule.optimizer!r}; use adam or sgd")

    ramp = schedule.warmup * batches_per_epoch

    def factor(batch: int) -> float:
        warming = min(1.0, (batch + 1) / ramp) if ramp > 0 else 1.0
        return warming * planned(batch)

    def planned(batch: int) -> float:
        if schedule.scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(batch, total_batches) / max(1, total_batches)))
        if schedule.scheduler == "step":
            return schedule.gamma ** math.floor(batch / batches_per_epoch / schedule.step_size)
        if schedule.scheduler == "constant":
            return 1.0
        raise RecastError(f"unknown scheduler {schedule.scheduler!r}; use cosine, step "
                          f"or constant")

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def batches_for(epochs: float, loader_len: int) -> int:
    """How many batches an epoch budget buys (at least one if any budget)."""
    return max(1, round(epochs * loader_len)) if epochs > 0 else 0


def cycle(loader: Iterable[tuple[Tensor, Tensor]]) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches forever, reshuffling at each pass."""
    while True:
        yield from loader


def fast_layout(x: Tensor, device: torch.device, safe: bool = True) -> Tensor:
    """Images in channels_last on the CPU: oneDNN convolutions run faster.

    Measured in benchmarks/speed.md; on CUDA without mixed precision it does
    not help, so tensors stay as they are there. Weights keep their layout,
    so a saved and reloaded student computes bit-identical logits. ``safe``
    False (see :func:`channels_last_safe`) keeps the images as they are.
    """
    if safe and device.type == "cpu" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def channels_last_safe(model: nn.Module | None) -> bool:
    """Whether ``model`` may train on channels_last images. oneDNN in torch 2.14
    corrupts the heap in the backward pass of a 1x1 strided conv reading 2 to 7
    channels in one group (a narrow bottleneck's shortcut: the process dies
    with "free(): invalid next size"), so such models train in the default
    layout."""
    if model is None:
        return True
    return not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
                   and m.stride != (1, 1) and m.groups == 1 and 1 < m.in_channels < 8
                   for m in model.modules())


def run_batches(
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    params: list[nn.Parameter],
    loader,
    schedule: Schedule,
    device: torch.device,
    progress: Progress,
    label: str,
    on_epoch: Callable[[int], None] | None = None,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
    resume: dict[str, Any] | None = None,
    model: nn.Module | None = None,
) -> dict[str, float]:
    """Train ``params`` on ``loss_fn(x, y)`` for ``schedule.epochs``; mean loss out.

    ``on_epoch(images_seen)`` runs after every pass over the data and at the end.
    ``checkpoint(position)`` runs after every pass but the last with what
    ``resume`` needs to continue from there: batches and images done, optimiser
    and scheduler state, recent losses. Passes start fresh iterations of the
    loader, so the loader's generator state at a pass boundary fixes the rest.
    ``model`` (the modules being trained) has its buffers averaged across
    processes and decides whether images may go in as channels_last.
    """
    total = batches_for(schedule.epochs, len(loader))
    if total == 0 or not params:
        return {"loss": float("nan"), "images": 0, "seconds": 0.0}
    opt, lr_schedule = make_optimizer(params, schedule, total, len(loader))
    start = time.perf_counter()
    done, images, recent = 0, 0, deque(maxlen=len(loader))
    if resume is not None:
        opt.load_state_dict(resume["optimizer"])
        lr_schedule.load_state_dict(resume["scheduler"])
        done, images = resume["batch"], resume["images"]
        recent.extend(resume["recent"])
        start -= resume["seconds"]
    bar = progress.bar(total, label, done)
    layout_safe = channels_last_safe(model)
    for step, (x, y) in zip(range(done, total), cycle(loader)):
        images += len(x)  # the global batch: every process's share counts
        x, y = distributed.shard(x, y)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = loss_fn(fast_layout(x, device, layout_safe), y)
        if distributed.any_true(not torch.isfinite(loss)):
            raise NonFiniteLoss(f"{label}: the loss became {loss.item()} at batch {step}; "
                                f"lower the learning rate (--lr)", first_batch=step == 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(params)
        rate = opt.param_groups[0]["lr"]  # the rate this batch was trained with
        opt.step()
        lr_schedule.step()
        recent.append(loss.item())
        pass_ended = (step + 1) % len(loader) == 0
        if pass_ended or step + 1 == total:
            distributed.average_buffers(model)
        bar.update(loss=recent[-1], lr=rate,
                   rate=images / (time.perf_counter() - start),
                   pass_ended=(step + 1) // len(loader) if pass_ended else 0)
        if on_epoch is not None and (pass_ended or step + 1 == total):
            on_epoch(images)
        if checkpoint is not None and pass_ended and step + 1 < total:
            checkpoint({"batch": step + 1, "images": images, "optimizer": opt.state_dict(),
                        "scheduler": lr_schedule.state_dict(), "recent": list(recent),
                        "seconds": time.perf_counter() - start})
    bar.close()
    seconds = time.perf_counter() - start
    return {"loss": sum(recent) / len(recent), "images": images, "seconds": seconds}


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, images: int = 0) -> float:
    """Top-1 accuracy in percent; on ``images`` of the loader's images (0: all),
    taken from batches spread evenly over it, as a folder of images comes in
    class order. Every submodule keeps its own train/eval mode.

    (Restoring only the top module's mode would put a frozen teacher inside a
    wrapper into train mode, and its batch norms would drift.)
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    correct = total = 0
    stride = 1
    for index, (x, y) in enumerate(loader):
        if images and index == 0 and hasattr(loader, "__len__"):
            stride = max(1, len(loader) // math.ceil(images / len(y)))
        if index % stride:
            continue
        if images:
            x, y = x[:images - total], y[:images - total]
        logits = model(fast_layout(x.to(device), device))
        correct += int((logits.argmax(1).cpu() == y).sum())
        total += len(y)
        if images and total >= images:
            break
    for module, mode in modes:
        module.training = mode
    return 100.0 * correct / max(1, total)


def check_device(name: str) -> None:
    """Refuse a device name torch does not know, before anything runs."""
    try:
        device = torch.device("cpu" if name == "auto" else name)
    except RuntimeError:
        raise RecastError(f"--device {name!r} is not a device; use auto (CUDA when present), "
                          f"cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise RecastError(f"--device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RecastError(f"--device {name}: CUDA is not available here; use --device cpu")


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    if name == "auto":
        if torch.cuda.is_available():  # under torchrun: this process's own device
            return torch.device("cuda", distributed.local_rank())
        return torch.device("cpu")
    check_device(name)
    return torch.device(name)
