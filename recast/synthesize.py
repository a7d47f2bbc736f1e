"""Data-free transfer sets: images synthesised from the teacher's BatchNorm statistics.

A BN teacher remembers, per layer, the mean and variance its training images
produced. DeepInversion (Yin et al., CVPR 2020) optimises random images until
every BN layer sees those statistics in the batch, plus cross-entropy towards
sampled classes and a smoothness prior; the result is a transfer set that needs
no real image. Recasting's block steps need no labels, so they can run on it.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recast.errors import RecastError
from recast.progress import Progress

_BatchNorm = nn.modules.batchnorm._BatchNorm


@dataclass
class SynthesisSettings:
    """How many images, and how hard each batch is optimised."""

    images: int = 2048
    steps: int = 200  # optimisation steps per batch
    batch_size: int = 128
    lr: float = 0.1
    bn_weight: float = 1.0
    class_weight: float = 1.0
    smoothness_weight: float = 1e-3
    seed: int = 0


class _StatisticsLoss:
    """Forward hooks that measure how far each BN layer's batch statistics are from
    its running statistics."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules()
                       if isinstance(m, _BatchNorm) and m.running_mean is not None]
        if not self.layers:
            raise RecastError("the teacher has no BatchNorm layers, so it holds no statistics "
                              "to synthesise images from; pass real images with --data-dir")
        self.terms: list[Tensor] = []
        self.handles = [m.register_forward_hook(self._hook) for m in self.layers]

    def _hook(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        x = inputs[0]
        dims = [0] + list(range(2, x.dim()))
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        self.terms.append(torch.norm(mean - module.running_mean, 2)
                          + torch.norm(var - module.running_var, 2))

    def take(self) -> Tensor:
        total = torch.stack(self.terms).sum()
        self.terms = []
        return total

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def smoothness(x: Tensor) -> Tensor:
    """Total variation: neighbouring pixels should differ little, as in real images."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + \
        (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def synthesize(teacher: nn.Module, shape: tuple[int, int, int], num_classes: int,
               mean: tuple[float, ...], std: tuple[float, ...],
               settings: SynthesisSettings | None = None,
               progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``settings.images`` images (uint8, N x H x W x C) and the classes they were drawn to.

    Images are optimised in the teacher's normalised input space, then mapped
    back to pixels with ``mean`` / ``std`` (the normalisation the teacher was
    trained with) so they load like any other npz data set.
    """
    settings = settings or SynthesisSettings()
    progress = progress or Progress(quiet=True)
    teacher = teacher.eval().requires_grad_(False)
    statistics = _StatisticsLoss(teacher)
    generator = torch.Generator().manual_seed(settings.seed)
    pixels, classes = [], []
    channels = shape[0]
    mean_t = torch.tensor(mean[:channels]).view(1, -1, 1, 1)
    std_t = torch.tensor(std[:channels]).view(1, -1, 1, 1)
    try:
        bar = progress.bar(-(-settings.images // settings.batch_size) * settings.steps,
                           "synthesise")
        for start in range(0, settings.images, settings.batch_size):
            count = min(settings.batch_size, settings.images - start)
            target = torch.randint(0, num_classes, (count,), generator=generator)
            x = torch.randn((count, *shape), generator=generator).requires_grad_(True)
            optimizer = torch.optim.Adam([x], lr=settings.lr)
            for _ in range(settings.steps):
                logits = teacher(x)
                loss = (settings.bn_weight * statistics.take()
                        + settings.class_weight * F.cross_entropy(logits, target)
                        + settings.smoothness_weight * smoothness(x))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                bar.update(loss=loss.item(), lr=settings.lr, rate=float(count))
            statistics.terms = []
            image = (x.detach() * std_t + mean_t).clamp(0, 1) * 255
            pixels.append(image.round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
            classes.append(target.numpy())
        bar.close()
    finally:
        statistics.close()
    return np.concatenate(pixels), np.concatenate(classes).astype(np.int64)


@torch.no_grad()
def statistics_gap(teacher: nn.Module, images: Tensor) -> float:
    """Summed distance of every BN layer's batch statistics on ``images`` from its
    running statistics: how well a set matches what the teacher was trained on."""
    statistics = _StatisticsLoss(teacher.eval())
    try:
        teacher(images)
        return float(statistics.take())
    finally:
        statistics.close()
