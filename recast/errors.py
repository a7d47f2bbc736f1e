"""Errors a user can act on: each message names the problem and the fix."""


class RecastError(Exception):
    """Base for every error recast reports to a user as one line."""


class WalkError(RecastError):
    """The teacher cannot be traced or cut into a chain of blocks."""


class PlanError(RecastError):
    """The requested recast cannot be built for these blocks."""


class NonFiniteLoss(RecastError):
    """The loss became NaN or infinite: the phase is retried at a lower rate, unless
    it was so on the phase's first batch, before any update (no rate is to blame)."""

    def __init__(self, message: str, first_batch: bool = False) -> None:
        super().__init__(message)
        self.first_batch = first_batch


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: the CLI says how to continue the run, if there is one."""

    def __init__(self, signal_name: str = "SIGINT", then: str | None = None) -> None:
        super().__init__(signal_name)
        self.signal_name, self.then = signal_name, then  # then: how to continue, if one can

    @classmethod
    def saying(cls, stop: KeyboardInterrupt, then: str | None) -> "Stopped":
        """``stop`` (a signal, or a plain Ctrl-C) with how to continue what it stopped."""
        return cls(stop.signal_name if isinstance(stop, Stopped) else "SIGINT", then)
