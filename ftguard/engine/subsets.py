"""What ``subset`` (``--subset``, ``eval.subset``) may be and how many items it keeps.

A subset is one setting for every task (N items or a fraction), optionally overridden per
task (``--subset clause_type=1.0``, ``eval.task_subset``): a cheap scoring task can be
evaluated in full while an expensive generation task is sampled. Kept apart from the runner
so the CLI and the training config can check a value without importing the engine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

Subset = int | float
"""N items (an int >= 1) or a fraction 0 < F <= 1 (a float)."""


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


def subset_for(default: Subset | None, per_task: Mapping[str, Subset], suite: str,
               task: str) -> Subset | None:
    """The setting for one task: ``per_task["suite/task"]``, else ``per_task["task"]``,
    else ``default``."""
    for key in (f"{suite}/{task}", task):
        if key in per_task:
            return per_task[key]
    return default


def unknown_tasks(per_task: Mapping[str, Subset],
                  tasks: Iterable[tuple[str, str]]) -> list[str]:
    """Keys of ``per_task`` that name none of ``tasks`` ((suite, task) pairs)."""
    names = {name for suite, task in tasks for name in (task, f"{suite}/{task}")}
    return [key for key in per_task if key not in names]
