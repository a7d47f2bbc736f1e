"""Runs without labels (``--labels none``): when one happens, what it may not do,
and where its class count and test scores come from.

Recasting's block steps never read a label; only the fine-tune and teacher
training do. So a run on data without labels (or told to ignore them) keeps
its block steps, fine-tunes on the teacher's outputs alone, takes its class
count from the teacher and needs that teacher as a file. Its training labels
are dropped before anything trains, so none can be read by accident. A test
set without labels is scored as agreement with the teacher's top-1 class.
"""

import torch
from torch import nn

from recast.datasets import BatchLoader, Data, ImageSet
from recast.errors import RecastError
from recast.finetune import finetune_label
from recast.progress import Progress
from recast.runspec import RunSpec, check_labelless
from recast.presets import without_labels
from recast.teacher import ModelSpec, build_teacher
from recast.training import fast_layout

AGREEMENT = "agreement with the teacher's top-1 class (the test images have no labels)"


def settle_labels(spec: RunSpec, data: Data, progress: Progress,
                  teacher_state: dict[str, torch.Tensor] | None) -> None:
    """Fit ``spec`` to the data's labels (in place); refuse what cannot run without them.
    ``teacher_state``: the contents of ``spec.teacher`` (None without one)."""
    reason = "--labels none reads no label"
    unlabelled = None if data.train.labelled else data.source
    if spec.synthetic_images:  # made after these checks, which it must not wait for
        unlabelled = "the --data synthetic set"
    if unlabelled:
        reason = f"{unlabelled} has no training labels"
        if spec.given.get("labels") == "given":
            other = "drop --data synthetic" if spec.synthetic_images else "give labelled data"
            raise RecastError(f"--labels given, but {reason}; drop --labels given (recast "
                              f"then reads none) or {other}")
        if spec.config.labels == "given":
            spec.config = without_labels(spec.config, "finetune_loss" in spec.given)
            progress.log(f"recast: note: {reason}, so the run reads none (as --labels none)")
    if spec.config.labels == "none":
        check_labelless(spec.teacher, spec.method, reason)
        data.train = data.train.without_labels()
        data.num_classes = teacher_classes(spec.model, str(spec.teacher), data, teacher_state)
        how = (f"the block steps never read one and the fine-tune learns the teacher's "
               f"outputs only: {finetune_label(spec.config)}") if spec.method == "recast" \
            else f"--method {spec.method} learns the teacher's outputs only (alpha 1)"
        progress.log(f"recast: note: no label is read: {how}")
    if not data.test.labelled and not spec.teacher:
        raise RecastError(f"{data.source} has no test labels, so accuracy can only be "
                          f"agreement with a given teacher; pass one with --teacher FILE "
                          f"or give test labels")


def teacher_classes(model: ModelSpec, path: str, data: Data,
                    state: dict[str, torch.Tensor]) -> int:
    """The class count of the teacher file at ``path`` (``state``: its contents): its
    last Linear (or conv) layer's outputs."""
    probe = build_teacher(model, 10, data.in_channels, data.image_size)
    heads = [name for name, module in probe.named_modules()
             if isinstance(module, (nn.Linear, nn.Conv2d)) and f"{name}.weight" in state]
    if not heads:
        raise RecastError(f"--teacher {path} holds no layer of {model.label}, so its class "
                          f"count is unknown; check the model name and --teacher-width")
    return int(state[f"{heads[-1]}.weight"].shape[0])


def finish_labels(teacher: nn.Module, data: Data, progress: Progress) -> None:
    """With the teacher loaded: its output fixes the class count of a run without
    training labels; test labels must be its classes, or are its predictions."""
    if not data.train.labelled:
        teacher.eval()
        with torch.no_grad():
            shape = (1, data.in_channels, data.image_size, data.image_size)
            data.num_classes = int(teacher(torch.zeros(shape)).shape[1])
    if data.test.labelled:
        top = int(data.test.labels.max()) if len(data.test) else 0
        if top >= data.num_classes:
            raise RecastError(f"{data.source}: test labels reach {top} but the teacher has "
                              f"{data.num_classes} classes; give test labels "
                              f"0..{data.num_classes - 1}, the teacher's class numbers")
        return
    data.test = ImageSet(data.test.images, predictions(teacher.eval(), data))
    data.test_truth = "teacher"
    progress.log(f"recast: note: test accuracy is {AGREEMENT}")


@torch.no_grad()
def predictions(model: nn.Module, data: Data) -> torch.Tensor:
    """``model``'s top-1 class of every test image, computed as evaluation computes it."""
    loader = BatchLoader(data.test, data.mean, data.std, 256, train=False)
    return torch.cat([model(fast_layout(x, torch.device("cpu"))).argmax(1) for x, _ in loader])
