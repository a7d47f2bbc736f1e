"""Progress you can watch: tqdm bars on a terminal, one plain line otherwise."""

import atexit
import sys
import time
from pathlib import Path
from typing import Any

EVENT_EVERY = 10  # batches between live TensorBoard points


class Progress:
    """Makes bars; ``quiet`` (or no terminal) logs one line per finished phase.

    With ``watch(folder)`` and tensorboard installed, training loss, learning rate
    and images/s, and every test accuracy, also go live to TensorBoard events."""

    def __init__(self, quiet: bool = False) -> None:
        from recast.distributed import is_main

        self.silent = not is_main()  # under torchrun only rank 0 reports
        self.plain = quiet or self.silent or not sys.stderr.isatty()
        self.writer: Any = None
        self.batches = 0  # the x axis of the live training scalars

    def watch(self, folder: Path) -> Path | None:
        """Write live events into a fresh subfolder of ``folder`` (live, live-2 after
        a resume, ...); None when tensorboard is not installed."""
        if self.silent:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        self.close()
        target, number = folder / "live", 1
        while target.exists():
            number += 1
            target = folder / f"live-{number}"
        self.writer = SummaryWriter(str(target), flush_secs=10)
        atexit.register(self.close)  # a run that fails still leaves its last points
        return target

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def bar(self, total: int, label: str, done: int = 0) -> "Bar":
        return Bar(total, label, self.plain, done, self, silent=self.silent)

    def overall(self, total: int, label: str) -> Any:
        """A bar over whole phases (the recast steps) on a terminal; None otherwise."""
        if self.plain:
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=label, position=1, leave=False, dynamic_ncols=True)

    def log(self, message: str) -> None:
        if not self.silent:
            print(message, file=sys.stderr, flush=True)


class Bar:
    def __init__(self, total: int, label: str, plain: bool, done: int = 0,
                 progress: Progress | None = None, silent: bool = False) -> None:
        self.label, self.plain, self.total, self.silent = label, plain, total, silent
        self.progress = progress
        self.logged = -1  # the progress batch count of the last live point
        self.stats: dict[str, float] = {}
        self.first_lr: float | None = None  # the close line shows the rate's whole range
        self.start = time.perf_counter()
        self.tqdm: Any = None
        if not plain:
            from tqdm import tqdm

            self.tqdm = tqdm(total=total, initial=done, desc=label, leave=False,
                             dynamic_ncols=True)

    def update(self, **stats: float) -> None:
        self.stats = stats
        if self.first_lr is None:
            self.first_lr = stats["lr"]
        if self.progress is not None and self.progress.writer is not None:
            self.progress.batches += 1
            if self.progress.batches % EVENT_EVERY == 0 or stats.get("pass_ended"):
                self._event()
        if self.plain and not self.silent and stats.get("pass_ended"):
            print(f"{self.label}: pass {stats['pass_ended']}, loss {stats['loss']:.4f}, "
                  f"lr {stats['lr']:.2e}, {stats['rate']:.0f} img/s", file=sys.stderr,
                  flush=True)
        if self.tqdm is not None:
            self.tqdm.set_postfix(loss=f"{stats['loss']:.4f}", lr=f"{stats['lr']:.2e}",
                                  img_s=f"{stats['rate']:.0f}", refresh=False)
            self.tqdm.update(1)

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()
        if self.progress is not None and self.progress.writer is not None:
            if self.stats and self.logged != self.progress.batches:
                self._event()  # the phase's last point, however short the phase
            self.progress.writer.flush()  # a crash in the next phase keeps this one
        s = self.stats
        if s and not self.silent:
            print(f"{self.label}: {self.total} batches, loss {s['loss']:.4f}, "
                  f"lr {self.first_lr:.2e} -> {s['lr']:.2e}, {s['rate']:.0f} img/s, "
                  f"{time.perf_counter() - self.start:.1f} s", file=sys.stderr, flush=True)

    def _event(self) -> None:
        """Live TensorBoard point of this phase (teacher, recast, fine-tune, kd, ...)."""
        phase, step = self.label.split()[0], self.progress.batches
        for tag, key in (("loss", "loss"), ("lr", "lr"), ("images_per_s", "rate")):
            self.progress.scalar(f"{phase}/{tag}", self.stats[key], step)
        self.logged = step
