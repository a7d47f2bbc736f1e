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
that is thrown away afterwards.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recast.plan import Plan
from recast.progress import Progress
from recast.training import Schedule, run_batches


class LocalMatch(nn.Module):
    """Maps a student block's output onto what the teacher block produced."""

    def __init__(self, student_shape: torch.Size, teacher_shape: torch.Size,
                 kept: Tensor | None) -> None:
        super().__init__()
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

    def loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        if self.mode == "kept":
            teacher = teacher.index_select(1, self.kept)
        elif self.probe is not None:
            student = self.probe(student)
        return F.mse_loss(student, teacher)


@torch.no_grad()
def teacher_outputs(teacher: nn.ModuleList, x: Tensor) -> list[Tensor]:
    """The teacher's activation after every block."""
    outputs = []
    for block in teacher:
        x = block(x)
        outputs.append(x)
    return outputs


def local_matches(teacher: nn.ModuleList, student: nn.ModuleList, kept: list[Tensor | None],
                  example: Tensor) -> nn.ModuleList:
    """One LocalMatch per block (an example batch gives the shapes)."""
    was_training = student.training
    student.eval()
    with torch.no_grad():
        targets = teacher_outputs(teacher, example)
        matches, x = [], example
        for block, target, keep in zip(student, targets, kept):
            x = block(x)
            matches.append(LocalMatch(x.shape, target.shape, keep))
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
) -> dict[str, object]:
    """Train every changed student block on its local MSE; per-block losses out.

    Blocks the plan leaves unchanged in kind and width (a stem, say) keep the
    teacher's weights and are only fine-tuned later.
    """
    example = next(iter(loader))[0][:2].to(device)
    matches = local_matches(teacher, student, kept, example)
    trained = [i for i, step in enumerate(plan.steps)
               if step.recast or step.in_channels != step.block.in_channels]
    params = [p for i in trained for p in student[i].parameters()]
    params += [p for i in trained for p in matches[i].parameters()]
    recent: dict[int, float] = {}

    def loss_fn(x: Tensor, y: Tensor) -> Tensor:
        targets = teacher_outputs(teacher, x)
        total = x.new_zeros(())
        for i, block in enumerate(student):
            x = block(x.detach())
            if i in trained:
                loss = matches[i].loss(x, targets[i])
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
