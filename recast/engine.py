"""Sequential recasting, as the paper's authors run it, plus our options.

``block_training="local"`` replaces the sequential steps with one pass that
trains every target block at once (recast/local.py).

For each recastable block i, in order from the input: a fresh target block
replaces it, the block after it is rebuilt to read the new width (dimension
mismatch), and both (with the prefix, unless frozen) learn to reproduce the
teacher's activation at the rebuilt block's output (MSE). The teacher runs in
eval mode without gradients. Then the whole student is fine-tuned on
MSE(teacher logits) + CE(labels).
"""

import copy
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blocks import build_block
from recast.adapt import adapt_input, output_shape
from recast.checkpoint import CheckpointStore, rng_state, set_rng_state
from recast.errors import NonFiniteLoss, RecastError
from recast.local import train_local
from recast.losses import hinton_kd, labels_only, logit_mse_ce
from recast.plan import Plan
from recast.progress import Progress
from recast.training import Schedule, evaluate, run_batches
from recast.warmstart import can_warm_start, warm_start, warm_student


@dataclass
class RecastConfig:
    """Every knob of a recast; saved to config.json with the run."""

    epochs_per_block: float = 1.0
    finetune_epochs: float = 5.0
    lr: float = 1e-3
    finetune_lr: float | None = None
    optimizer: str = "adam"
    scheduler: str = "cosine"
    step_size: float = 20.0
    weight_decay: float = 0.0
    batch_size: int = 128
    freeze_prefix: bool = False
    init: str = "teacher"  # teacher | random
    seed: int = 0
    # mse-ce (the authors') | kd (Hinton) | ce (labels only: no teacher forward, so a
    # fine-tune pass costs what a scratch-training pass costs)
    finetune_loss: str = "mse-ce"
    finetune_optimizer: str | None = None  # default: as the block steps
    finetune_weight_decay: float | None = None
    kd_temperature: float = 4.0
    kd_alpha: float = 0.9
    # sequential (the authors': one block after another) | local (all at once,
    # each block on its own input; epochs_per_block is then the pass's length)
    block_training: str = "sequential"
    # a budget in epochs of images for the whole recast, of which block_fraction
    # goes to the block steps (split evenly) and the rest to the fine-tune; when
    # set, it replaces epochs_per_block and finetune_epochs
    budget_epochs: float | None = None
    block_fraction: float = 0.2

    def for_steps(self, steps: int) -> "RecastConfig":
        """This config with a budget turned into per-block and fine-tune epochs."""
        if self.budget_epochs is None:
            return self
        if not 0 <= self.block_fraction <= 1:
            raise RecastError(f"block fraction {self.block_fraction} is outside [0, 1]")
        blocks = self.budget_epochs * self.block_fraction
        return replace(self, epochs_per_block=blocks / max(1, steps),
                       finetune_epochs=self.budget_epochs - blocks, budget_epochs=None)

    def block_schedule(self) -> Schedule:
        return Schedule(self.epochs_per_block, self.lr, self.optimizer, self.scheduler,
                        self.step_size, weight_decay=self.weight_decay)

    def finetune_schedule(self) -> Schedule:
        decay = self.weight_decay if self.finetune_weight_decay is None \
            else self.finetune_weight_decay
        return Schedule(self.finetune_epochs, self.finetune_lr or self.lr,
                        self.finetune_optimizer or self.optimizer, self.scheduler,
                        self.step_size, weight_decay=decay)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StepRecord:
    """What one recast step did and what it left behind."""

    index: int
    name: str
    kind: str
    target: str
    loss_at: int
    final_mse: float
    accuracy: float
    seconds: float
    images: int
    warm_start: bool
    together: bool = False  # trained in one joint pass: seconds and images are the pass's

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RecastOutcome:
    student: nn.Sequential
    steps: list[StepRecord] = field(default_factory=list)
    finetune: dict[str, float] = field(default_factory=dict)
    accuracy: float = 0.0
    curve: list[dict[str, float]] = field(default_factory=list)
    images: int = 0  # training images seen by the student: the budget's unit


class Recaster:
    """Runs the recast steps of a plan over a teacher chain."""

    def __init__(self, plan: Plan, config: RecastConfig, device: torch.device,
                 progress: Progress | None = None, store: CheckpointStore | None = None
                 ) -> None:
        self.plan = plan
        steps = 1 if config.block_training == "local" else len(plan.recast_steps())
        self.config = config.for_steps(steps)
        self.device = device
        self.progress = progress or Progress(quiet=True)
        self.store = store  # checkpoints after every step and fine-tune pass, if given
        chain = plan.chain
        self.teacher = nn.ModuleList(copy.deepcopy(b.module) for b in chain.blocks).to(device)
        self.teacher.eval().requires_grad_(False)
        self.student = nn.ModuleList(copy.deepcopy(b.module) for b in chain.blocks).to(device)
        # teacher channel indices each student block's output holds (warm start)
        self.kept: dict[int, Tensor] = {}
        self.images = 0  # training images seen so far: the budget's unit
        self.curve: list[dict[str, float]] = []

    def run(self, train_loader, test_loader) -> RecastOutcome:
        """Recast every block, then fine-tune; resumes from ``store``'s checkpoint."""
        outcome = RecastOutcome(nn.Sequential())
        if self.config.block_training not in ("sequential", "local"):
            raise RecastError(f"unknown block training {self.config.block_training!r}; use "
                              f"sequential or local")
        saved = self.store.latest() if self.store is not None else None
        if saved is not None:
            outcome.steps = self._restore(saved, train_loader)
        steps = self.plan.recast_steps()
        if self.config.block_training == "local":
            if saved is None:
                outcome.steps = self.recast_all_at_once(train_loader, test_loader)
                self._checkpoint("steps", outcome.steps, train_loader)
            steps = []
        overall = self.progress.overall(len(steps), "recast steps") if steps else None
        for number, step in enumerate(steps):
            if number < len(outcome.steps):
                continue  # done before the resume
            if overall is not None:
                overall.n = number
                overall.refresh()
            self.progress.log(f"step {number + 1}/{len(steps)}: {step.block.name} "
                              f"({step.block.kind} -> {step.target}, "
                              f"{step.block.out_channels} -> {step.out_channels} channels)")
            outcome.steps.append(self._retrying(
                f"step {number + 1} ({step.block.name})", "lr", train_loader,
                lambda: self.recast_step(step.block.index, train_loader, test_loader)))
            self._checkpoint("steps", outcome.steps, train_loader)
        if overall is not None:
            overall.close()
        resume = saved.get("finetune") if saved is not None else None
        if resume is not None:
            resume = dict(resume, optimizer=self.store.optimizer(saved))
        pending = {"resume": resume}

        def restart_finetune() -> None:
            # the retry starts the fine-tune over at the lower rate: a saved position
            # (and the failed attempt's checkpoints) must not bring the old rate back
            pending["resume"] = None
            self._checkpoint("steps", outcome.steps, train_loader)

        outcome.finetune = self._retrying(
            "the fine-tune", "finetune_lr", train_loader,
            lambda: self.finetune(train_loader, test_loader, outcome.steps, pending["resume"]),
            restart_finetune)
        outcome.student = nn.Sequential(*self.student)
        # the fine-tune's last curve point already evaluated the finished student
        finished = outcome.finetune.get("final_accuracy")
        outcome.accuracy = finished if finished is not None else evaluate(
            outcome.student, test_loader, self.device)
        outcome.curve = self.curve
        outcome.images = self.images
        return outcome

    # all blocks at once -------------------------------------------------------
    def recast_all_at_once(self, train_loader, test_loader) -> list[StepRecord]:
        started = time.perf_counter()
        blocks, kept = warm_student(self.plan, self.config.init)
        self.student = nn.ModuleList(blocks).to(self.device)
        self.progress.log(f"all {len(self.plan.recast_steps())} target blocks at once, each "
                          f"on its own input")
        result = train_local(self.plan, self.teacher, self.student, kept, train_loader,
                             self.config.block_schedule(), self.device, self.progress)
        accuracy = evaluate(nn.Sequential(*self.student), test_loader, self.device)
        self.images += int(result["images"])
        self._point(self.images, accuracy, "after all blocks at once")
        self.progress.log(f"  after all blocks at once: test accuracy {accuracy:.2f}%")
        seconds = time.perf_counter() - started
        block_mse = result["block_mse"]
        return [StepRecord(step.block.index, step.block.name, step.block.kind, step.target,
                           step.block.index, block_mse.get(step.block.index, float("nan")),
                           accuracy, seconds, int(result["images"]),
                           self.config.init == "teacher"
                           and can_warm_start(step.block.kind, step.target)
                           and kept[step.block.index] is not None,
                           together=True)
                for step in self.plan.recast_steps()]

    # one step -----------------------------------------------------------------
    def recast_step(self, index: int, train_loader, test_loader) -> StepRecord:
        started = time.perf_counter()
        plan_step = self.plan.steps[index]
        block = plan_step.block
        warm, last = self._install(index)
        first_trained = index if self.config.freeze_prefix else 0
        params = [p for b in self.student[first_trained:last + 1] for p in b.parameters()]

        def loss_fn(x: Tensor, y: Tensor) -> Tensor:
            with torch.no_grad():
                expected = self._run(self.teacher, x, 0, last)
            return F.mse_loss(self._student_prefix(x, index, last), expected)

        self._train_mode(first_trained, last)
        result = run_batches(loss_fn, params, train_loader, self.config.block_schedule(),
                             self.device, self.progress, f"recast {block.name}")
        self.student.eval()
        accuracy = evaluate(_Hybrid(self.student, self.teacher, last), test_loader, self.device)
        self.images += int(result["images"])
        self._point(self.images, accuracy, f"after {block.name}")
        self.progress.log(f"  after {block.name}: MSE {result['loss']:.4f}, test accuracy "
                          f"{accuracy:.2f}%")
        return StepRecord(index, block.name, block.kind, plan_step.target, last,
                          result["loss"], accuracy, time.perf_counter() - started,
                          int(result["images"]), warm)

    def _install(self, index: int) -> tuple[bool, int]:
        """Put block ``index``'s target (warm-started if it can be) into the student.

        Returns whether it was warm-started and the last block rebuilt after it.
        """
        plan_step = self.plan.steps[index]
        block = plan_step.block
        target = self.plan.build_block(index)
        warm = False
        if self.config.init == "teacher" and can_warm_start(block.kind, plan_step.target):
            kept = warm_start(block.module, target, self._input_channels(index),
                              kind=block.kind)
            if kept is not None:
                self.kept[index] = kept
                warm = True
        self.student[index] = target.to(self.device)
        return warm, self._rebuild_after(index, plan_step.out_channels)

    def _retrying(self, phase: str, rate: str, train_loader, run: Callable[[], Any],
                  before_retry: Callable[[], None] | None = None) -> Any:
        """Run a phase; on a NaN/inf loss rerun it once from its start at 1/10 the rate."""
        saved = (copy.deepcopy(self.student), copy.deepcopy(self.kept), self.images,
                 list(self.curve), rng_state(getattr(train_loader, "generator", None)))
        try:
            return run()
        except NonFiniteLoss as first:
            config = self.config
            old = getattr(config, rate) or config.lr
            self.student, self.kept, self.images, self.curve = (
                saved[0], saved[1], saved[2], saved[3])
            set_rng_state(saved[4], getattr(train_loader, "generator", None))
            self.progress.log(f"{phase}: {first}; retrying it from its start at learning "
                              f"rate {old / 10:.2e}")
            self.config = replace(config, **{rate: old / 10})
            if before_retry is not None:
                before_retry()
            try:
                return run()
            except NonFiniteLoss as again:
                raise RecastError(f"{phase}: the loss stayed non-finite at learning rate "
                                  f"{old:.2e} and {old / 10:.2e} ({again}); lower it "
                                  f"further (--lr, --finetune-lr) or check the data for "
                                  f"NaN values") from again
            finally:
                self.config = config

    # checkpoints --------------------------------------------------------------
    def _checkpoint(self, phase: str, steps: list[StepRecord], train_loader,
                    finetune: dict[str, Any] | None = None) -> None:
        if self.store is None:
            return
        state = {"phase": phase, "steps": [s.to_json() for s in steps],
                 "images": self.images, "curve": self.curve,
                 "rng": rng_state(getattr(train_loader, "generator", None))}
        optimizer = None
        if finetune is not None:
            optimizer = finetune.pop("optimizer")
            state["finetune"] = finetune
        self.store.save(state, self.student, optimizer)

    def _restore(self, saved: dict[str, Any], train_loader) -> list[StepRecord]:
        """Rebuild the student as the checkpoint left it and load its weights."""
        steps = [StepRecord(**record) for record in saved["steps"]]
        if self.config.block_training == "local":
            blocks, _ = warm_student(self.plan, self.config.init)
            self.student = nn.ModuleList(blocks).to(self.device)
        else:
            for record in steps:
                self._install(record.index)
        try:
            self.student.load_state_dict(self.store.weights(saved))
        except RuntimeError as exc:
            raise RecastError(f"the checkpoint in {self.store.folder} does not fit this run's "
                              f"student ({str(exc).splitlines()[0][:100]}); start again with "
                              f"--force") from exc
        self.images, self.curve = saved["images"], saved["curve"]
        set_rng_state(saved["rng"], getattr(train_loader, "generator", None))
        self.progress.log(f"resuming after {len(steps)} recast step(s)"
                          f"{' and part of the fine-tune' if 'finetune' in saved else ''}")
        return steps

    def _input_channels(self, index: int) -> Tensor:
        """Teacher channels the input of block ``index`` holds, in order."""
        if index - 1 in self.kept:
            return self.kept[index - 1]
        return torch.arange(self.plan.chain.blocks[index].in_channels)

    def _rebuild_after(self, index: int, channels: int) -> int:
        """Rebuild blocks after ``index`` until widths match the teacher again.

        Returns the index of the last rebuilt block: where the loss is taken.
        """
        chain = self.plan.chain
        position = index
        while channels != chain.blocks[position].out_channels:
            position += 1
            if position >= len(chain.blocks):
                raise RecastError("the recast student never returns to the teacher's "
                                  "width; the head cannot be rebuilt")
            block = chain.blocks[position]
            keep = self.kept.get(position - 1) if self.config.init == "teacher" else None
            if block.recastable:
                module = _fresh_like(block, channels)
                if keep is not None:
                    warm_start(block.module, module, keep, keep_outputs=True)
            else:
                module = adapt_input(block.module, block.in_shape, channels, keep)
            self.student[position] = module.to(self.device)
            self.kept.pop(position, None)
            channels = output_shape(module, (1, channels, *block.in_shape[2:]))[1]
        return position

    def _student_prefix(self, x: Tensor, index: int, last: int) -> Tensor:
        if self.config.freeze_prefix:
            with torch.no_grad():
                x = self._run(self.student, x, 0, index - 1)
            return self._run(self.student, x, index, last)
        return self._run(self.student, x, 0, last)

    def _train_mode(self, first: int, last: int) -> None:
        for i, module in enumerate(self.student):
            module.train(first <= i <= last)

    @staticmethod
    def _run(blocks: nn.ModuleList, x: Tensor, first: int, last: int) -> Tensor:
        for block in blocks[first:last + 1]:
            x = block(x)
        return x

    def _point(self, images: int, accuracy: float, phase: str) -> None:
        """One point of the accuracy-vs-images curve, also sent live to TensorBoard."""
        self.curve.append({"images": images, "accuracy": round(accuracy, 2), "phase": phase})
        self.progress.scalar("test/accuracy_vs_images", accuracy, images)

    # fine-tune ----------------------------------------------------------------
    def finetune(self, train_loader, test_loader=None, steps: list[StepRecord] | None = None,
                 resume: dict[str, Any] | None = None) -> dict[str, float]:
        """The whole student on the fine-tune loss; checkpoints after every pass."""
        student = nn.Sequential(*self.student).train()
        teacher = nn.Sequential(*self.teacher)
        config = self.config
        if config.finetune_loss == "kd":
            def combine(s: Tensor, t: Tensor, y: Tensor) -> Tensor:
                return hinton_kd(s, t, y, config.kd_temperature, config.kd_alpha)
            label = f"Hinton KD (T={config.kd_temperature}, alpha={config.kd_alpha})"
        elif config.finetune_loss == "mse-ce":
            combine, label = logit_mse_ce, "MSE(teacher logits) + CE(labels)"
        elif config.finetune_loss == "ce":
            combine, label = labels_only, "CE(labels), no teacher"
        else:
            raise RecastError(f"unknown fine-tune loss {config.finetune_loss!r}; use mse-ce, "
                              f"kd or ce")

        needs_teacher = combine is not labels_only

        def loss_fn(x: Tensor, y: Tensor) -> Tensor:
            expected = None
            if needs_teacher:
                with torch.no_grad():
                    expected = teacher(x)
            return combine(student(x), expected, y)

        start_images = resume["start_images"] if resume else self.images
        accuracies: list[float] = []

        def record(images: int) -> None:
            accuracies.append(evaluate(student, test_loader, self.device))
            self._point(start_images + images, accuracies[-1], "fine-tune")

        def checkpoint(position: dict[str, Any]) -> None:
            self.images = start_images + position["images"]
            self._checkpoint("finetune", steps or [], train_loader,
                             dict(position, start_images=start_images))

        self.progress.log(f"fine-tune: {label}")
        result = run_batches(loss_fn, list(student.parameters()), train_loader,
                             config.finetune_schedule(), self.device, self.progress,
                             "fine-tune", on_epoch=record if test_loader is not None else None,
                             checkpoint=checkpoint if self.store is not None else None,
                             resume=resume)
        self.images = start_images + int(result["images"])
        student.eval()
        if accuracies:
            result["final_accuracy"] = accuracies[-1]
        return result


def _fresh_like(block, in_channels: int) -> nn.Module:
    """A fresh block of ``block``'s own kind reading ``in_channels`` (temporary)."""
    growth = block.growth if block.kind == "dense" else None
    out = block.out_channels
    if block.kind == "dense" and block.n_layers and growth:
        out = in_channels + block.n_layers * growth
    module = build_block(block.kind, in_channels, out, block.stride,
                         mid_channels=block.mid_channels, growth=growth)
    return nn.Sequential(module, copy.deepcopy(block.tail)) if block.tail is not None else module


class _Hybrid(nn.Module):
    """Student blocks up to ``last``, teacher blocks after: accuracy mid-recast."""

    def __init__(self, student: nn.ModuleList, teacher: nn.ModuleList, last: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([*student[:last + 1], *teacher[last + 1:]])

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x
