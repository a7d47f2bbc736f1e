"""Write a module as ONNX: the one exporter call that ``recast export``, the report's
ONNX Runtime latency and the latency benchmark share."""

import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from recast.errors import RecastError


def write_onnx(model: nn.Module, shape: tuple[int, ...], target: Path | io.BytesIO,
               opset: int = 17, dynamic_batch: bool = False, batch: int = 1) -> None:
    """``model`` as ONNX (input "input", output "logits"), unchecked: the one exporter
    call that export_onnx and the latency benchmark share."""
    example = torch.zeros((batch, *shape[1:]))
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    try:
        with warnings.catch_warnings(), _quiet_stderr():
            warnings.simplefilter("ignore")  # the exporter's deprecation notice
            torch.onnx.export(model, (example,), target, dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes=axes, do_constant_folding=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise RecastError(f"torch.onnx could not export the model at opset {opset} ({first}); "
                          f"try a newer --opset (17 is tested)") from exc
    if isinstance(target, Path):
        import onnx

        try:
            onnx.checker.check_model(str(target))
        except Exception as exc:
            raise RecastError(f"the exported file fails onnx.checker ({str(exc)[:160]}); try "
                              f"another --opset") from exc


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2: on failure the exporter prints its whole graph there
    from C++, and a user error must stay one line."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
