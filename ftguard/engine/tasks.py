"""Which tasks a run evaluates: ``--tasks``, ``pytest --ftguard-tasks``, ``[tool.ftguard] tasks``.

A name is ``TASK`` (that task in every suite that has one), ``SUITE/TASK`` (one task), or a
glob of either (``legal/*``, ``*_qa``; ``*`` is every task). Suites left without a selected
task are dropped from the run. A name that matches no task is an error naming it and
listing the known tasks, like a per-task ``--subset`` key (:mod:`ftguard.engine.subsets`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import replace

from ftguard.errors import UsageError
from ftguard.suite import Suite


def parse_tasks(values: Iterable[str], flag: str = "{--tasks}") -> tuple[str, ...]:
    """Names from repeated and comma-separated values (``a,b`` ``c``), stripped, in order,
    duplicates dropped; UsageError for a value that names nothing (``''``, ``a,,b``)."""
    names: dict[str, None] = {}
    for value in values:
        parts = [p.strip() for p in value.split(",")]
        if not all(parts):
            raise UsageError(f"{flag} {value!r}: an empty task name.",
                             hint="Give TASK or SUITE/TASK names separated by commas, "
                                  "e.g. clause_type,general/commonsense.", option="tasks")
        names.update(dict.fromkeys(parts))
    return tuple(names)


def selects(name: str, suite: str, task: str) -> bool:
    """Whether ``name`` (TASK, SUITE/TASK or a glob of either) selects ``suite/task``."""
    full = f"{suite}/{task}" if "/" in name else task
    return name == full or fnmatch.fnmatchcase(full, name)


def is_selected(names: Sequence[str], suite: str, task: str) -> bool:
    """Whether any of ``names`` selects ``suite/task`` (every task when ``names`` is empty)."""
    return not names or any(selects(n, suite, task) for n in names)


def check_tasks(names: Sequence[str], suites: Sequence[Suite],
                flag: str = "{--tasks}") -> None:
    """UsageError naming the first of ``names`` that selects no task of ``suites``."""
    pairs = [(s.name, t.name) for s in suites for t in s.tasks]
    for name in names:
        if not any(selects(name, s, t) for s, t in pairs):
            known = ", ".join(f"{s}/{t}" for s, t in pairs) or "none"
            raise UsageError(f"{flag} {name!r} names no task of the suites being evaluated "
                             f"(tasks: {known}).",
                             hint="Give TASK (that task in every suite), SUITE/TASK, or a glob "
                                  "of them, several separated by commas.", option="tasks")


def select_tasks(suites: Sequence[Suite], names: Sequence[str]) -> list[Suite]:
    """``suites`` with only the tasks ``names`` select, the suites left without a task
    dropped (all of them unchanged when ``names`` is empty); UsageError for a name that
    selects nothing (:func:`check_tasks`). A suite keeps its content hash: its selected tasks
    are those of the same suite content."""
    if not names:
        return list(suites)
    check_tasks(names, suites)
    kept = [replace(s, tasks=[t for t in s.tasks if is_selected(names, s.name, t.name)])
            for s in suites]
    return [s for s in kept if s.tasks]


def narrowed(suites: Sequence[Suite]) -> list[str] | None:
    """``suite/task`` of every task of ``suites`` when some suite lost tasks to a selection
    (what a RunRecord's ``config.tasks`` records); None when each suite is whole."""
    if all(len(s.tasks) == len(s.spec.tasks) for s in suites):
        return None
    return [f"{s.name}/{t.name}" for s in suites for t in s.tasks]
