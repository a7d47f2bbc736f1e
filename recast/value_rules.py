"""What a number given to recast may be: one predicate per rule, and the words an
error uses for it.

recast/settings.py checks the config's fields with them and recast/runspec.py the
command line's other numbers, so a rule reads and means the same in both.
"""

import math
from typing import Any

POSITIVE, NON_NEGATIVE = "a positive number", "a number >= 0"
UNIT, COUNT = "a number in [0, 1]", "a whole number >= 1"
NON_NEGATIVE_COUNT = "a whole number >= 0"
SHARE = "a number in (0, 1]"


def non_negative(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v >= 0


def positive(v: Any) -> bool:
    return non_negative(v) and v > 0


def unit(v: Any) -> bool:
    return non_negative(v) and v <= 1


def share(v: Any) -> bool:
    return positive(v) and v <= 1


def non_negative_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def count(v: Any) -> bool:
    return non_negative_count(v) and v >= 1
