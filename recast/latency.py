"""Measured latency: MACs that drop do not always make a model faster.

PyTorch and ONNX Runtime are timed the same way (median wall time of repeated
runs after a warm-up) so their numbers compare; ``explain_speedup`` names the
usual reason when a student is much less faster than its mults promise.
"""

import copy
import statistics
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

NARROW_CHANNELS = 64  # below this a conv's kernel runs far from peak on a CPU core


def _median_ms(run: Callable[[], Any], repeats: int, warmup: int, max_seconds: float) -> float:
    """Median of ``repeats`` timed calls after ``warmup`` untimed ones.

    Stops early once ``max_seconds`` are spent so large models stay cheap to
    report; at least three timed runs are always made.
    """
    for _ in range(warmup):
        run()
    times: list[float] = []
    spent = 0.0
    while len(times) < repeats and (len(times) < 3 or spent < max_seconds):
        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
        times.append(elapsed * 1000)
        spent += elapsed
    return statistics.median(times)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure_latency_ms(
    module: nn.Module,
    input_shape: tuple[int, ...],
    batch: int = 1,
    repeats: int = 10,
    warmup: int = 2,
    max_seconds: float = 2.0,
    threads: int | None = None,
    channels_last: bool = False,
) -> float:
    """Median wall time of one forward pass in milliseconds, on the CPU.

    ``threads`` (default: the current torch setting) is restored afterwards;
    ``channels_last`` times an NHWC copy of the module, the layout oneDNN
    prefers, and leaves ``module`` as it was.
    """
    module = module.eval()
    x = torch.randn((batch, *input_shape[1:]))
    if channels_last:
        module = copy.deepcopy(module).to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch_threads(threads), torch.inference_mode():
        return _median_ms(lambda: module(x), repeats, warmup, max_seconds)


def onnx_session(model: str | Path | bytes, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (None: its default).

    Inter-op parallelism stays off: a CNN is one chain of ops, and a second
    pool would only compete with the first for the same cores.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def measure_onnx_latency_ms(
    model: str | Path | bytes | Any,
    input_shape: tuple[int, ...],
    batch: int = 1,
    repeats: int = 10,
    warmup: int = 2,
    max_seconds: float = 2.0,
    threads: int | None = None,
) -> float:
    """Median wall time of one ONNX Runtime run in milliseconds, on the CPU.

    ``model`` is an .onnx path, its bytes, or a ready session (then
    ``threads`` is the session's own and is ignored). Same method as
    :func:`measure_latency_ms`.
    """
    session = model if hasattr(model, "run") else onnx_session(model, threads)
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((batch, *input_shape[1:]), dtype=np.float32)
    return _median_ms(lambda: session.run(None, {name: x}), repeats, warmup, max_seconds)


def explain_speedup(mults_ratio: float, measured_ratio: float, student: nn.Module) -> str | None:
    """One line on why the measured speed-up is under half the mults ratio, else None.

    Mults count arithmetic only; a CPU also pays a fixed cost per layer and
    for every byte moved, which is what narrow and depthwise layers are made of.
    """
    if measured_ratio >= mults_ratio / 2:
        return None
    convs = [m for m in student.modules() if isinstance(m, nn.Conv2d)]
    head = (f"measured speed-up {measured_ratio:.2f}x is under half the "
            f"{mults_ratio:.2f}x mults ratio: likely")
    depthwise = [c for c in convs if c.groups > 1 and c.groups == c.in_channels]
    if depthwise and len(depthwise) * 4 >= len(convs):
        return (f"{head} memory-bound depthwise convs ({len(depthwise)} of {len(convs)} convs "
                f"have groups == channels: they move about as many bytes as they multiply)")
    narrow = [c for c in convs if c.out_channels < NARROW_CHANNELS]
    if narrow and len(narrow) * 2 >= len(convs):
        return (f"{head} overhead-bound narrow layers ({len(narrow)} of {len(convs)} convs "
                f"have < {NARROW_CHANNELS} channels: fixed per-layer cost outweighs their "
                f"few multiplies; a larger batch or fewer, wider layers help)")
    return (f"{head} memory traffic and per-layer overhead, which mults do not count "
            f"({len(convs)} convs, none mostly narrow or depthwise)")
