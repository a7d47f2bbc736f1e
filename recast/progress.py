"""Progress you can watch: tqdm bars on a terminal, one plain line otherwise."""

import sys
import time
from typing import Any


class Progress:
    """Makes bars; ``quiet`` (or no terminal) logs one line per finished phase."""

    def __init__(self, quiet: bool = False) -> None:
        self.plain = quiet or not sys.stderr.isatty()

    def bar(self, total: int, label: str, done: int = 0) -> "Bar":
        return Bar(total, label, self.plain, done)

    def overall(self, total: int, label: str) -> Any:
        """A bar over whole phases (the recast steps) on a terminal; None otherwise."""
        if self.plain:
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=label, position=1, leave=False, dynamic_ncols=True)

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)


class Bar:
    def __init__(self, total: int, label: str, plain: bool, done: int = 0) -> None:
        self.label, self.plain, self.total = label, plain, total
        self.stats: dict[str, float] = {}
        self.start = time.perf_counter()
        self.tqdm: Any = None
        if not plain:
            from tqdm import tqdm

            self.tqdm = tqdm(total=total, initial=done, desc=label, leave=False,
                             dynamic_ncols=True)

    def update(self, **stats: float) -> None:
        self.stats = stats
        if self.plain and stats.get("pass_ended"):
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
        s = self.stats
        if s:
            print(f"{self.label}: {self.total} batches, loss {s['loss']:.4f}, "
                  f"lr {s['lr']:.2e}, {s['rate']:.0f} img/s, "
                  f"{time.perf_counter() - self.start:.1f} s", file=sys.stderr, flush=True)
