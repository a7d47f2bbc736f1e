"""All target blocks at once: one pass per batch trains every block locally.

Sequential recasting (the authors') trains block i through the prefix before
it, so step i costs i blocks of forward and backward and the whole recast
grows with the square of the depth. Here every student block reads its own
predecessor's output, detached, and learns the teacher block's output there
(decoupled greedy training, Belilovsky et al. 2020; LIT and DNA feed the
teacher's activations instead). One batch costs one teacher forward and one
student forward and backward: the price of a distillation batch, the same at
every depth. The whole-network fine-tune afterwards repairs what local losses
cannot see.

Where the student is narrower, its block output is compared with the teacher
channels it kept (warm start) or, from a random start, through a 1x1 probe
that is thrown away afterwards. The comparison is the block loss of the
sequential steps (``--block-loss``, MSE by default).
"""

from typing import Mapping

import torch
from torch import Tensor, nn

from recast.feature_losses import block_outputs, matching_channels
from recast.losses import BLOCK_LOSSES, LOSS_WEIGHTS, BlockLoss, BlockLossFn
from recast.plan import Plan
from recast.progress import Progress
from recast.training import Schedule, run_batches


class LocalMatch(nn.Module):
    """Maps a student block's output onto what the teacher block produced."""

    def __init__(self, student_shape: torch.Size, teacher_shape: torch.Size,
                 kept: Tensor | None, compare: BlockLossFn | None = None) -> None:
        super().__init__()
        self.compare = compare or BLOCK_LOSSES["mse"].make({})
        self.register_buffer("kept", kept if kept is not None else torch.empty(0, dtype=torch.long))
        self.probe: nn.Module | None = None
        if student_shape == teacher_shape:
            self.mode = "same"
        elif kept is not None and len(kept) == student_shape[1]:
            self.mode = "kept"
        elif len(student_shape) == 4 and student_shape[2:] == teacher_shape[2:]:
            self.mode = "probe"
            self.probe = nn.Conv2d(student_shape[1], teacher_shape[1], 1, bias=False)
        else:
            raise ValueError(f"cannot compare student output {tuple(student_shape)} with "
                             f"teacher output {tuple(teacher_shape)}")

    def loss(self, student: Tensor, teacher: Tensor, student_in: Tensor | None = None,
             teacher_in: Tensor | None = None) -> Tensor:
        """The block loss of the block's output (and of its input, for FSP)."""
        if self.mode == "kept":
            teacher = teacher.index_select(1, self.kept)
        elif self.probe is not None:
            student = self.probe(student)
        return self.compare(student, teacher, student_in, teacher_in)


@torch.no_grad()
def teacher_outputs(teacher: nn.ModuleList, x: Tensor) -> list[Tensor]:
    """The teacher's activation after every block."""
    return block_outputs(teacher, x)


def local_matches(teacher: nn.ModuleList, student: nn.ModuleList, kept: list[Tensor | None],
                  example: Tensor, compare: BlockLossFn | None = None) -> nn.ModuleList:
    """One LocalMatch per block (an example batch gives the shapes)."""
    was_training = student.training
    student.eval()
    with torch.no_grad():
        targets = teacher_outputs(teacher, example)
        matches, x = [], example
        for block, target, keep in zip(student, targets, kept):
            x = block(x)
            matches.append(LocalMatch(x.shape, target.shape, keep, compare))
    student.train(was_training)
    return nn.ModuleList(matches).to(example.device)


def train_local(
    plan: Plan,
    teacher: nn.ModuleList,
    student: nn.ModuleList,
    kept: list[Tensor | None],
    loader,
    schedule: Schedule,
    device: torch.device,
    progress: Progress,
    block_loss: BlockLoss | None = None,
    weights: Mapping[str, float] | None = None,
) -> dict[str, object]:
    """Train every changed student block on its local loss (``block_loss``, MSE by
    default; ``weights`` its weights); per-block losses out.

    Blocks the plan leaves unchanged in kind and width (a stem, say) keep the
    teacher's weights and are only fine-tuned later.
    """
    block_loss = block_loss or BLOCK_LOSSES["mse"]
    example = next(iter(loader))[0][:2].to(device)
    matches = local_matches(teacher, student, kept, example,
                            block_loss.make({**LOSS_WEIGHTS, **(weights or {})}))
    trained = [i for i, step in enumerate(plan.steps)
               if step.recast or step.in_channels != step.block.in_channels]
    params = [p for i in trained for p in student[i].parameters()]
    params += [p for i in trained for p in matches[i].parameters()]
    recent: dict[int, float] = {}

    def loss_fn(x: Tensor, y: Tensor) -> Tensor:
        targets = teacher_outputs(teacher, x)
        total = x.new_zeros(())
        for i, block in enumerate(student):
            given = x.detach()
            teacher_in = targets[i - 1] if i else given
            x = block(given)
            if i in trained:
                pair = matching_channels(given, teacher_in, kept[i - 1] if i else None) \
                    if block_loss.needs_inputs else (None, None)
                loss = matches[i].loss(x, targets[i], *pair)
                recent[i] = 0.9 * recent.get(i, loss.item()) + 0.1 * loss.item()
                total = total + loss
        return total

    for i, block in enumerate(student):
        block.train(i in trained)
    result = run_batches(loss_fn, params, loader, schedule, device, progress,
                         "local (all blocks at once)", model=student)
    student.eval()
    result["block_mse"] = {i: round(v, 5) for i, v in recent.items()}
    result["trained"] = trained
    return result
