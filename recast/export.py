"""ONNX export of a run's student (or teacher), checked against PyTorch.

The file is written only if ONNX Runtime reproduces PyTorch's logits on real
test images to within 1e-4, so a deployed model is the model that was
measured. The exporter is torch's TorchScript-based one (``dynamo=False``):
with torch 2.14 the dynamo exporter also needs onnxscript, took about 20x
longer on a small CNN here, and wrote opset 18 when 17 was asked for (its
down-conversion failed); the TorchScript exporter writes the opset asked for.
"""

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recast.datasets import BatchLoader, ImageSet, channel_stats, load_data
from recast.errors import RecastError
from recast.latency import measure_latency_ms, measure_onnx_latency_ms, onnx_session
from recast.onnx_io import write_onnx
from recast.serialize import read_student
from recast.teacher import ModelSpec, build_teacher, load_teacher

TOLERANCE = 1e-4
LATENCY_BATCHES = (1, 64)
CHECK_IMAGES = 64
INSTALL = "pip install 'recast[export]'"
EXPORTER = "torch.onnx TorchScript exporter (dynamo=False)"


def export_onnx(run_dir: str | Path, onnx_path: str | Path, *, opset: int = 17,
                dynamic_batch: bool = False, teacher: bool = False) -> dict[str, Any]:
    """Write the run's student (or teacher) as ONNX, checked and timed.

    Without ``dynamic_batch`` the file takes exactly one image (batch 1), the
    shape of on-device inference; its batch-64 latency is then timed on the
    same model exported at batch 64 in memory. Never overwrites a file.
    """
    runtime = _require_onnx()
    low, high = opset_range()
    if not low <= opset <= high:
        raise RecastError(f"--opset {opset} is not one torch can export; use {low} to {high} "
                          f"(17 is tested)")
    run, out = Path(run_dir), Path(onnx_path)
    if out.exists():
        raise RecastError(f"{out} already exists; choose a new file name (export never "
                          f"overwrites)")
    student, arch = read_student(run)
    config = _read_json(run / "config.json")
    shape = tuple(arch.get("input_shape") or (1, 3, 32, 32))
    model = _teacher(run, config, shape, _classes(arch, student, shape)) if teacher else student
    model.eval()
    images, source = _check_images(config, shape)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecastError(f"cannot create the folder of {out} ({exc.strerror}); choose "
                          f"another path") from exc
    partial = out.with_name(f".{out.name}.partial")
    try:
        write_onnx(model, shape, partial, opset, dynamic_batch)
        diff = _max_abs_diff(model, partial, images, dynamic_batch)
        if not diff <= TOLERANCE:
            raise RecastError(f"ONNX Runtime's logits differ from PyTorch's by {diff:.2e} "
                              f"(> {TOLERANCE:g}) at opset {opset}, so {out} was not kept; "
                              f"try another --opset")
        _publish(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return {
        "path": str(out), "model": "teacher" if teacher else "student",
        "max_abs_diff": diff, "tolerance": TOLERANCE, "check_images": len(images),
        "check_data": source, "opset": opset, "dynamic_batch": dynamic_batch,
        "input_shape": [None if dynamic_batch else 1, *shape[1:]],
        "exporter": EXPORTER, "onnxruntime": runtime,
        "threads": torch.get_num_threads(),
        "latency_ms": _latencies(model, out, shape, opset, dynamic_batch),
    }


def _require_onnx() -> str:  # ONNX Runtime's version, or one line naming the extra
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError as exc:
        raise RecastError(f"ONNX export needs onnx and onnxruntime ({exc.name or 'one'} is "
                          f"not installed); install the optional extra: {INSTALL}") from exc
    return onnxruntime.__version__


def opset_range() -> tuple[int, int]:
    """Opsets this torch's TorchScript exporter writes (7, the oldest ONNX Runtime reads)."""
    try:
        from torch.onnx import _constants

        return max(7, _constants.ONNX_MIN_OPSET), _constants.ONNX_MAX_OPSET
    except (ImportError, AttributeError):
        return 7, 20


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RecastError(f"{path} is not valid JSON ({exc}); the run folder is damaged") \
            from exc


def _classes(arch: dict[str, Any], student: nn.Module, shape: tuple[int, ...]) -> int:
    if arch.get("num_classes"):
        return int(arch["num_classes"])
    with torch.inference_mode():
        return int(student(torch.zeros((1, *shape[1:]))).shape[1])


def _run_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The run's settings from config.json, flat: model, teacher width, files, data."""
    spec = config.get("run")
    if spec is None:  # a run folder of an earlier recast
        return config.get("argv") or {}
    flat = {k: v for k, v in spec.items() if k != "model"}
    flat.update(spec.get("model") or {})
    flat["data_dir"] = (config.get("data") or {}).get("data_dir") or flat.get("data_dir")
    return flat


def _teacher(run: Path, config: dict[str, Any], shape: tuple[int, ...],
             classes: int) -> nn.Module:
    """The zoo teacher rebuilt from config.json's command line, with its weights."""
    argv = _run_settings(config)
    if argv.get("model_file"):
        raise RecastError(f"the teacher of {run} comes from --model-file {argv['model_file']}, "
                          f"user code export does not run; export it with torch.onnx.export")
    if not argv.get("model"):
        raise RecastError(f"{run}/config.json does not name the teacher model (the run was "
                          f"not made by the recast CLI); export the teacher with "
                          f"torch.onnx.export from your own code")
    try:
        spec = ModelSpec(argv["model"], teacher_width=argv.get("teacher_width") or 1.0)
        model = build_teacher(spec, classes, shape[1], shape[-1])
    except RecastError as exc:
        raise RecastError(f"cannot rebuild the teacher {argv['model']!r} of {run} ({exc}); "
                          f"export it with torch.onnx.export") from exc
    weights = run / "teacher.safetensors"
    if not weights.is_file():
        given = argv.get("teacher")
        if not given or not Path(given).is_file():
            raise RecastError(f"{run} has no teacher.safetensors and its --teacher file "
                              f"{given or '(none)'} is not found; run export from the folder "
                              f"the run was started in, or copy the teacher file there")
        weights = Path(given)
    return load_teacher(model, weights)


def _check_images(config: dict[str, Any], shape: tuple[int, ...]) -> tuple[torch.Tensor, str]:
    """Up to 64 normalised test images of the run's data, else of the demo sample.

    Falls back to random inputs only when neither fits the model's input shape.
    """
    argv = _run_settings(config)
    data_dir = argv.get("data_dir")
    dataset = argv.get("dataset") if argv.get("dataset") != "imagenet" else None
    tries = []
    if data_dir and Path(data_dir).is_dir():
        tries.append((str(data_dir), lambda: _dir_images(Path(data_dir), dataset, shape)))
    tries.append(("the embedded CIFAR-10 demo sample", lambda: load_data(
        limit_train=1, limit_test=CHECK_IMAGES).test.images))
    norm = config.get("normalisation") or {}
    for source, load in tries:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                images = load()
        except (RecastError, OSError):
            continue
        if tuple(images.shape[1:]) != tuple(shape[1:]):
            continue
        images = images[:CHECK_IMAGES]
        mean, std = channel_stats(images)
        loader = BatchLoader(ImageSet.of(images, None), norm.get("mean") or mean,
                             norm.get("std") or std, len(images), train=False)
        return loader.normalise(images), f"{source} (test images)"
    generator = torch.Generator().manual_seed(0)
    return (torch.randn((CHECK_IMAGES, *shape[1:]), generator=generator),
            f"random inputs (no test data found fits the input shape {list(shape[1:])})")


def _dir_images(root: Path, dataset: str | None, shape: tuple[int, ...]) -> torch.Tensor:
    """Test images from --data-dir: in-memory layouts whole, image folders a few files."""
    folder = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    if folder is None or list(root.glob("*.npz")):
        return load_data(dataset, root, limit_train=1, limit_test=CHECK_IMAGES).test.images
    from torchvision import datasets, transforms

    size = shape[-1]
    items = datasets.ImageFolder(str(folder), transform=transforms.Compose([
        transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()]))
    step = max(1, len(items) // CHECK_IMAGES)  # spread over the classes
    return torch.stack([items[i][0] for i in range(0, len(items), step)][:CHECK_IMAGES])


def _max_abs_diff(model: nn.Module, path: Path, images: torch.Tensor, dynamic: bool) -> float:
    """Largest |logit difference|: a dynamic file at two batch sizes, a fixed one per image."""
    session = onnx_session(path, torch.get_num_threads())
    with torch.inference_mode():
        expected = model(images).numpy()
    if dynamic:
        runs = [(images, expected), (images[:1], expected[:1])]
    else:
        runs = [(images[i:i + 1], expected[i:i + 1]) for i in range(len(images))]
    diff = 0.0
    for x, y in runs:
        got = session.run(None, {"input": x.numpy()})[0]
        diff = max(diff, float(np.abs(got - y).max()))
    return diff


def _publish(partial: Path, out: Path) -> None:
    """Move the checked file into place, never over one that appeared meanwhile."""
    try:
        os.link(partial, out)
        return
    except FileExistsError:
        pass
    except OSError:  # no hard links on this file system
        if not out.exists():
            os.replace(partial, out)
            return
    raise RecastError(f"{out} appeared while exporting; choose a new file name")


def _latencies(model: nn.Module, path: Path, shape: tuple[int, ...], opset: int,
               dynamic: bool) -> dict[str, dict[str, float]]:
    """ONNX Runtime and PyTorch, same thread count, same batches, same method."""
    threads = torch.get_num_threads()
    result: dict[str, dict[str, float]] = {"onnxruntime": {}, "pytorch": {}}
    for batch in LATENCY_BATCHES:  # first, while no ONNX Runtime threads are alive
        result["pytorch"][f"batch{batch}"] = round(measure_latency_ms(model, shape, batch), 3)
    session = onnx_session(path, threads)
    for batch in LATENCY_BATCHES:
        source = session
        if not dynamic and batch != 1:
            buffer = io.BytesIO()
            write_onnx(model, shape, buffer, opset, False, batch)
            source = onnx_session(buffer.getvalue(), threads)
        ms = measure_onnx_latency_ms(source, shape, batch)
        result["onnxruntime"][f"batch{batch}"] = round(ms, 3)
    return result
