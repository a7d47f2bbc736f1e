"""Errors a user can act on: each message names the problem and the fix."""


class RecastError(Exception):
    """Base for every error recast reports to a user as one line."""


class WalkError(RecastError):
    """The teacher cannot be traced or cut into a chain of blocks."""


class PlanError(RecastError):
    """The requested recast cannot be built for these blocks."""


class NonFiniteLoss(RecastError):
    """The loss became NaN or infinite: the phase is retried at a lower rate."""
