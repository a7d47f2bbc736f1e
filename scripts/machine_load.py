"""How busy the machine was while a benchmark run trained.

Wall times compare only under equal load; this records the load beside each
wall time so a ratio can be checked instead of trusted.
"""

import os
import statistics
import threading


class LoadSampler:
    """Samples the 1-minute load average every ``every`` seconds in a daemon thread.

    A single-threaded benchmark lane alone on the machine reads about 1.0; each
    other busy thread adds about 1.
    """

    def __init__(self, every: float = 30.0) -> None:
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float | int]:
        """Mean and max of the samples (the first one still holds the load before the run)."""
        return {"mean": round(statistics.mean(self.samples), 2),
                "max": round(max(self.samples), 2), "samples": len(self.samples)}
