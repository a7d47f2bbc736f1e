"""The recast's order of events: block steps, then the fine-tune, resumable.

The steps themselves live in recast/steps.py, the student surgery in
recast/surgery.py, the fine-tune in recast/finetune.py. This module runs them
in order, checkpoints after every step and fine-tune pass, resumes from the
latest checkpoint, and reruns a phase once at a tenth of its learning rate if
its loss becomes NaN or infinite.
"""

import copy
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
from torch import nn

from recast import distributed
from recast.checkpoint import CheckpointStore, rng_state, set_rng_state
from recast.errors import NonFiniteLoss, RecastError
from recast.finetune import finetune
from recast.plan import Plan
from recast.precision import NO_BFLOAT16, TargetChain, expected_precision, \
    finetune_reads_teacher, has_fast_bfloat16
from recast.progress import Progress
from recast.settings import RecastConfig
from recast.steps import StepRecord, block_loss_label, recast_all_at_once, recast_step
from recast.surgery import StudentSurgery
from recast.training import evaluate
from recast.warmstart import warm_student


@dataclass
class RecastOutcome:
    student: nn.Sequential
    steps: list[StepRecord] = field(default_factory=list)
    finetune: dict[str, float] = field(default_factory=dict)
    accuracy: float = 0.0
    curve: list[dict[str, float]] = field(default_factory=list)
    images: int = 0  # training images seen by the student: the budget's unit


class Recaster:
    """Runs the recast steps of a plan over a teacher chain, then the fine-tune."""

    def __init__(self, plan: Plan, config: RecastConfig, device: torch.device,
                 progress: Progress | None = None, store: CheckpointStore | None = None
                 ) -> None:
        self.plan = plan
        local = config.block_training == "local"
        self.config = config.validate().split(1 if local else len(plan.recast_steps()))
        self.device = device
        self.progress = progress or Progress(quiet=True)
        fit_steps = [s.block.index for s in plan.recast_steps()
                     if self.config.solve_mode(s.block.kind, s.target) not in ("none", "input")]
        self.auto_precision = config.teacher_precision == "auto"
        if self.auto_precision:  # the run's record names what it ran
            hardware = has_fast_bfloat16(device)
            self.config = replace(self.config, teacher_precision=expected_precision(
                self.config, self.config.solves_targets and bool(fit_steps), hardware))
            chosen = self.config.teacher_precision
            expects = "read" if chosen == "bfloat16" else "skip"
            why = f"the fine-tune is expected to {expects} the teacher" if hardware \
                else NO_BFLOAT16
            self.progress.log(f"teacher precision auto: {chosen} on {device} ({why})")
        self.store = store  # checkpoints after every step and fine-tune pass, if given
        self.teacher = nn.ModuleList(copy.deepcopy(b.module) for b in plan.chain.blocks)
        self.teacher.to(device).eval().requires_grad_(False)
        self.surgery = StudentSurgery(plan, self.config.init, device, fit_steps=fit_steps)
        self.images = 0  # training images seen so far: the budget's unit
        self.curve: list[dict[str, float]] = []

    def run(self, train_loader, test_loader) -> RecastOutcome:
        """Recast every block, then fine-tune; resumes from ``store``'s checkpoint."""
        outcome = RecastOutcome(nn.Sequential())
        saved = self.store.latest() if self.store is not None else None
        if saved is not None:
            outcome.steps = self._restore(saved, train_loader)
        steps = self.plan.recast_steps()
        if self.config.block_training == "local":
            if saved is None:
                outcome.steps = recast_all_at_once(
                    self.plan, self.surgery, self.teacher, self.config, train_loader,
                    test_loader, self.device, self.progress)
                self._after_block_phase(outcome.steps[0], "after all blocks at once")
                self._checkpoint(outcome.steps, train_loader)
            steps = []
        overall = self.progress.overall(len(steps), "recast steps") if steps else None
        if len(outcome.steps) < len(steps):  # block steps to run: say what they minimise
            self.progress.log(f"block steps: {block_loss_label(self.config)}")
        for number, step in enumerate(steps):
            if number < len(outcome.steps):
                continue  # done before the resume
            if overall is not None:
                overall.n = number
                overall.refresh()
            self.progress.log(f"step {number + 1}/{len(steps)}: {step.block.name} "
                              f"({step.block.kind} -> {step.target}, "
                              f"{step.block.out_channels} -> {step.out_channels} channels)")
            record = self._retrying(
                f"step {number + 1} ({step.block.name})", "lr", train_loader,
                lambda: recast_step(self.surgery, self.teacher, step.block.index, self.config,
                                    train_loader, test_loader, self.device, self.progress))
            self._after_block_phase(record, f"after {step.block.name}")
            outcome.steps.append(record)
            self._checkpoint(outcome.steps, train_loader)
        if overall is not None:
            overall.close()
        self._settle_finetune(outcome.steps)
        outcome.finetune = self._finetune(saved, outcome.steps, train_loader, test_loader)
        outcome.student = nn.Sequential(*self.surgery.blocks)
        finished = outcome.finetune.get("final_accuracy")
        outcome.accuracy = finished if finished is not None else evaluate(
            outcome.student, test_loader, self.device)
        outcome.curve = self.curve
        outcome.images = self.images
        return outcome

    def _settle_finetune(self, steps: list[StepRecord]) -> None:
        """Decide an unset fine-tune warm-up and an auto fine-tune loss from what the
        block steps did; say so."""
        before = self.config
        solved = any(s.solved_start for s in steps)
        self.config = before.settle_finetune(solved)
        after = "after a closed-form start" if solved else "no closed-form start"
        if before.finetune_warmup is None and self.config.finetune_warmup:
            self.progress.log(f"fine-tune warm-up: {self.config.finetune_warmup:g} epoch(s), "
                              f"{after}")
        if before.finetune_loss == "auto":
            share = self.config.finetune_teacher_share
            handed = f" handed over to ce after {share:g} of it" if share < 1 else ""
            self.progress.log(f"fine-tune loss auto: {self.config.finetune_loss}{handed} "
                              f"({after})")
        if self.auto_precision and self.config.teacher_precision == "bfloat16" and \
                not finetune_reads_teacher(self.config):
            self.progress.log("teacher precision auto: the fine-tune skips the teacher "
                              f"after all ({after}); the block steps' targets ran in "
                              "bfloat16")

    def _after_block_phase(self, record: StepRecord, phase: str) -> None:
        self.images += record.images
        self._point(self.images, record.accuracy, phase)

    def _finetune(self, saved: dict[str, Any] | None, steps: list[StepRecord], train_loader,
                  test_loader) -> dict[str, float]:
        resume = saved.get("finetune") if saved is not None else None
        if resume is not None:
            resume = dict(resume, optimizer=self.store.optimizer(saved))
        pending = {"resume": resume}

        def restart() -> None:
            # the retry starts the fine-tune over at the lower rate: a saved position
            # (and the failed attempt's checkpoints) must not bring the old rate back
            pending["resume"] = None
            self._checkpoint(steps, train_loader)

        def attempt() -> dict[str, float]:
            resume = pending["resume"]
            start = resume["start_images"] if resume else self.images

            def checkpoint(position: dict[str, Any]) -> None:
                self.images = start + position["images"]
                self._checkpoint(steps, train_loader, dict(position, start_images=start))

            result = finetune(
                nn.Sequential(*self.surgery.blocks),
                TargetChain(nn.Sequential(*self.teacher), self.config.teacher_precision),
                self.config,
                train_loader, test_loader, self.device, self.progress,
                lambda images, accuracy: self._point(start + images, accuracy, "fine-tune"),
                checkpoint if self.store is not None else None, resume)
            self.images = start + int(result["images"])
            return result

        return self._retrying("the fine-tune", "finetune_lr", train_loader, attempt, restart)

    def _retrying(self, phase: str, rate: str, train_loader, run: Callable[[], Any],
                  before_retry: Callable[[], None] | None = None) -> Any:
        """Run a phase; on a NaN/inf loss rerun it once from its start at 1/10 the rate."""
        generator = getattr(train_loader, "generator", None)
        saved = (copy.deepcopy(self.surgery.blocks), copy.deepcopy(self.surgery.kept),
                 self.images, list(self.curve), rng_state(generator))
        try:
            return run()
        except NonFiniteLoss as first:
            if first.first_batch:
                raise RecastError(
                    f"{phase}: the loss is not finite on the first batch, before any update, "
                    f"so this phase's learning rate is not to blame: the teacher's "
                    f"activations, the data or the student's earlier blocks hold inf/NaN (a "
                    f"teacher whose BatchNorm statistics were barely trained does this; train "
                    f"it longer or pass a trained --teacher)") from first
            config = self.config
            old = getattr(config, rate) or config.lr
            self.surgery.blocks, self.surgery.kept, self.images, self.curve = saved[:4]
            set_rng_state(saved[4], generator)
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

    def _checkpoint(self, steps: list[StepRecord], train_loader,
                    finetune: dict[str, Any] | None = None) -> None:
        if self.store is None or not distributed.is_main():  # rank 0 writes
            return
        state = {"phase": "steps" if finetune is None else "finetune",
                 "steps": [s.to_json() for s in steps], "images": self.images,
                 "curve": self.curve, "rng": rng_state(getattr(train_loader, "generator", None))}
        optimizer = None
        if finetune is not None:
            optimizer = finetune.pop("optimizer")
            state["finetune"] = finetune
        self.store.save(state, self.surgery.blocks, optimizer)

    def _restore(self, saved: dict[str, Any], train_loader) -> list[StepRecord]:
        """Rebuild the student as the checkpoint left it and load its weights."""
        steps = [StepRecord.from_json(record, self.config.solve) for record in saved["steps"]]
        if self.config.block_training == "local":
            self.surgery.replace_all(warm_student(self.plan, self.config.init)[0])
        else:
            for record in steps:
                self.surgery.install(record.index)
        try:
            self.surgery.blocks.load_state_dict(self.store.weights(saved))
        except RuntimeError as exc:
            raise RecastError(f"the checkpoint in {self.store.folder} does not fit this run's "
                              f"student ({str(exc).splitlines()[0][:100]}); start again with "
                              f"--force") from exc
        self.images, self.curve = saved["images"], saved["curve"]
        set_rng_state(saved["rng"], getattr(train_loader, "generator", None))
        self.progress.log(f"resuming after {len(steps)} recast step(s)"
                          f"{' and part of the fine-tune' if 'finetune' in saved else ''}")
        return steps

    def _point(self, images: int, accuracy: float, phase: str) -> None:
        """One point of the accuracy-vs-images curve, also sent live to TensorBoard."""
        self.curve.append({"images": images, "accuracy": round(accuracy, 2), "phase": phase})
        self.progress.scalar("test/accuracy_vs_images", accuracy, images)
