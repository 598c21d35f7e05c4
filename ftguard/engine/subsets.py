"""What ``subset`` (``--subset``, ``eval.subset``) may be and how many items it keeps.

Kept apart from the runner so the CLI and the training config can check a value without
importing the engine.
"""

from __future__ import annotations

import math


def check_subset(value: object) -> float:
    """``value`` if it is a valid subset setting (an int >= 1, or a float 0 < F <= 1);
    otherwise ValueError saying what to give."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, float) and 0 < value <= 1:
        return value
    raise ValueError(f"subset {value!r}: give a number of items (e.g. 40) or a fraction "
                     "0 < F <= 1 (e.g. 0.25)")


def subset_size(subset: float | None, n: int) -> int:
    """Items a ``subset`` setting keeps of ``n``: N items (an int), or a fraction 0 < F <= 1
    of them (a float, rounded up, at least one); all of them for None."""
    if subset is None:
        return n
    if isinstance(subset, float) and subset <= 1:
        return min(n, max(1, math.ceil(subset * n)))
    return min(n, int(subset))
