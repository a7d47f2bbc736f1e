"""Hints (FitNets): which blocks of a planned student output their teacher block's
shape, and the refusal of a hint loss on a plan that has none, made when the plan
is, for a recast's fine-tune and for the ``hint`` baseline alike.
"""

from recast.errors import RecastError
from recast.losses import BASELINES, LOSSES, NO_HINTS
from recast.plan import Plan
from recast.progress import Progress


def hint_blocks(plan: Plan) -> list[str]:
    """The blocks (logits excepted) of the planned student that output their teacher
    block's shape: what hints compare. A kept block does, whatever it reads (the stem,
    a transition rebuilt for a narrower input); a recast one only at its full width."""
    return [step.block.name for step in plan.steps[:-1]
            if step.spec is None or step.out_channels == step.block.out_channels]


def check_hints(plan: Plan, method: str, finetune_loss: str,
                progress: Progress | None = None) -> None:
    """Refuse a loss that needs blocks of the teacher's shape (the method's, or a recast's
    fine-tune loss) when the plan has none: now, not at the fine-tune's first batch.
    Say which blocks it will compare, since a kept stem alone may be all there is."""
    if not LOSSES[BASELINES.get(method, finetune_loss)].same_shapes:
        return
    blocks = hint_blocks(plan)
    if not blocks:
        raise RecastError(NO_HINTS)
    if progress is not None:
        progress.log(f"hints at {len(blocks)} of {len(plan.steps) - 1} blocks: "
                     f"{', '.join(blocks)}")
