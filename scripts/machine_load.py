"""How busy the machine was while a benchmark run trained.

Wall times compare only under equal load; this records the load beside each
wall time so a ratio can be checked instead of trusted.
"""

import os
import statistics
import threading


class LoadSampler:
    """Samples the 1-minute load average every ``every`` seconds in a daemon thread,
    and once more at the end.

    A single-threaded benchmark lane alone on the machine reads about 1.0; each
    other busy thread adds about 1. The average lags by about a minute, so the
    first sample mostly shows the load before the run.
    """

    def __init__(self, every: float = 30.0) -> None:
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def _sample(self) -> None:
        try:
            self.samples.append(os.getloadavg()[0])
        except (OSError, AttributeError):  # no load average on this platform
            pass

    def _sample_until_stopped(self) -> None:
        self._sample()
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def summary(self) -> dict[str, float | int] | None:
        """Mean and max of the samples; None where the platform gave none, so a
        finished run's record is never lost to its load."""
        if not self.samples:
            return None
        return {"mean": round(statistics.mean(self.samples), 2),
                "max": round(max(self.samples), 2), "samples": len(self.samples)}
