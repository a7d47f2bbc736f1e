"""Measured latency: MACs that drop do not always make a model faster."""

import statistics
import time

import torch
from torch import nn


def measure_latency_ms(
    module: nn.Module,
    input_shape: tuple[int, ...],
    batch: int = 1,
    repeats: int = 10,
    warmup: int = 2,
    max_seconds: float = 2.0,
) -> float:
    """Median wall time of one forward pass in milliseconds, on the CPU.

    Stops early once ``max_seconds`` are spent so large models stay cheap to
    report; at least three timed runs are always made.
    """
    module = module.eval()
    x = torch.randn((batch, *input_shape[1:]))
    times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            module(x)
        spent = 0.0
        while len(times) < repeats and (len(times) < 3 or spent < max_seconds):
            start = time.perf_counter()
            module(x)
            elapsed = time.perf_counter() - start
            times.append(elapsed * 1000)
            spent += elapsed
    return statistics.median(times)
