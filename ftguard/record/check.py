"""The checks every RunRecord passes, when written and when read: unique suites, tasks and
items, finite numbers, free-form settings nested at most :data:`MAX_DEPTH` levels."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftguard.errors import RecordError

if TYPE_CHECKING:
    from ftguard.record.run import RunRecord


def check_run(record: RunRecord, path: Path | str) -> None:
    """Raise RecordError naming ``path``, suite/task and item when ``record`` cannot be
    compared soundly: two suites of one name, two tasks of one name in a suite, two items of
    one id in a task, a NaN or infinite number (a score, statistic, metric, timing or
    setting; only a log-likelihood may be -inf), or free-form settings nested too deep."""
    check_plain(path, "", {"config": record.config.given(),
                           "environment": record.environment.given()})
    bad_timings = [k for k, v in record.timings.items() if not math.isfinite(v)]
    if bad_timings:
        raise RecordError(f"{path}: timing(s) {', '.join(map(short, bad_timings))} non-finite "
                          "(NaN or infinite); records hold finite numbers only.")
    suites: set[str] = set()
    for suite in record.suites:
        if suite.name in suites:
            raise RecordError(f"{path}: suite {suite.name!r} appears twice; a run holds each "
                              "suite once.", hint="Evaluate suites with different names (the "
                                                  "'name:' in suite.yaml), or split the run.")
        suites.add(suite.name)
        check_plain(path, f"{suite.name}: ", {"gate": suite.gate})
        tasks: set[str] = set()
        for task in suite.tasks:
            where = f"{path}: {suite.name}/{task.name}"
            if task.name in tasks:
                raise RecordError(f"{where}: the task appears twice in suite {suite.name}.")
            tasks.add(task.name)
            check_plain(path, f"{suite.name}/{task.name}: ", {"settings": task.settings})
            for name, metric in task.metrics.items():
                odd = [k for k in ("value", "ci_low", "ci_high", "stderr")
                       if not math.isfinite(getattr(metric, k) or 0.0)]
                if odd:
                    raise RecordError(f"{where}: metric {name!r} has a non-finite (NaN or "
                                      f"infinite) {', '.join(odd)}; records hold finite "
                                      "numbers only.", hint=RERUN)
            ids: set[str] = set()
            for sample in task.samples:
                if sample.id in ids:
                    raise RecordError(f"{where}: item id {sample.id!r} appears twice; paired "
                                      "statistics need unique ids within a task.",
                                      hint="Give every JSONL row its own 'id'.")
                ids.add(sample.id)
                bad = [k for k, v in sample.scores.items() if not math.isfinite(v)] + [
                    k for k, v in sample.stats.items() if not all(map(math.isfinite, v))] + [
                    "loglikelihoods" for v in sample.loglikelihoods or ()
                    if math.isnan(v) or v == math.inf][:1]
                if bad:
                    raise RecordError(f"{where}: item {sample.id!r} has a non-finite (NaN or "
                                      f"infinite) value of {', '.join(sorted(set(bad)))}.",
                                      hint=RERUN)


RERUN = ("Re-run the evaluation; a metric that cannot be computed for an item must not be "
          "recorded as NaN.")
"""Hint of the errors about a non-finite value in a record."""
MAX_DEPTH = 100
"""Deepest nesting of free-form settings (config, environment, gate, task settings)."""


def check_plain(path: Path | str, where: str, fields: dict[str, Any]) -> None:
    """Free-form values hold finite numbers and nest at most :data:`MAX_DEPTH` levels (deeper
    ones would exhaust Python's recursion limit in code that dumps or compares them)."""
    stack: list[tuple[Any, str, int]] = [(v, k, 1) for k, v in fields.items()]
    while stack:
        value, key, depth = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise RecordError(f"{path}: {where}{short(key)} is non-finite ({value}); records "
                              "hold finite numbers only.")
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise RecordError(f"{path}: {where}{short(key)} is nested more than "
                                  f"{MAX_DEPTH} levels deep.")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((v, f"{key}.{k}" if isinstance(value, dict) else f"{key}[{k}]",
                          depth + 1) for k, v in items)


def short(value: Any, limit: int = 80) -> str:
    """``value`` (its repr unless a string) cut to ``limit`` characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

