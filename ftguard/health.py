"""Generation health: generate tasks whose predictions are empty or cut by the token budget.

A zero-shot prompt that makes the model answer nothing, a stop string that matches at once,
a ``max_new_tokens`` too small for the expected answer: each lowers the metrics without any
error. The engine records, per generate task, the share of empty predictions and the share
cut at ``max_new_tokens`` (:class:`~ftguard.record.GenerationHealth`); these pure functions
turn that into one self-contained line per problem, for ``ftguard eval`` (one run) and for
comparisons (base vs tuned). Lines carry no ``warning:`` prefix: each shell adds its own.
Truncation is not warned about for a task whose metrics all read only the answer's opening
(a refusal detector decides within the first sentences; a short budget there is by design).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ftguard.record import GenerationHealth, RunRecord, SampleResult, TaskResult

EMPTY_SHARE_WARNING = 0.20
"""A run warns about a generate task when at least this share of its predictions is empty."""
TRUNCATED_SHARE_WARNING = 0.20
"""... or when at least this share of its predictions was cut at ``max_new_tokens``."""
CHANGE_WARNING_POINTS = 10.0
"""A comparison warns when either share moves by at least this many percentage points."""

_EPS = 1e-9  # shares are ratios of counts: differences of them need a tolerance


def generation_health(samples: Sequence[SampleResult], max_new_tokens: int) -> GenerationHealth:
    """Shares of empty (whitespace only) and of truncated predictions among ``samples``;
    the truncated share counts only samples whose ``truncated`` flag is known."""
    n = len(samples)
    # the generation's own health: the text before any ``extract`` filter
    empty = sum(1 for s in samples if not (s.raw_prediction if s.raw_prediction is not None
                                           else s.prediction).strip())
    known = [s.truncated for s in samples if s.truncated is not None]
    return GenerationHealth(n=n, empty=empty / n if n else 0.0,
                            truncated=sum(known) / len(known) if known else None,
                            max_new_tokens=max_new_tokens, unknown=n - len(known))


def task_health(task: TaskResult) -> GenerationHealth | None:
    """A generate task's health: as recorded, or computed from its samples for records
    written before ftguard recorded it (truncation then unknown). None for other kinds."""
    if task.kind != "generate":
        return None
    if task.health is not None:
        return task.health
    generation = task.settings.get("generation")
    budget = generation.get("max_new_tokens") if isinstance(generation, dict) else None
    return generation_health(task.samples, budget if isinstance(budget, int) else 0)


def run_warnings(run: RunRecord) -> list[str]:
    """One line per generate task with at least :data:`EMPTY_SHARE_WARNING` empty or
    :data:`TRUNCATED_SHARE_WARNING` truncated predictions, one line when the truncation of
    some predictions is unknown, and first one line per task the run skipped."""
    lines: list[str] = [f"{suite.name}/{skip.name}: {skip.reason}; skipped (compare and gate "
                        "report it as unchecked, never as passed)"
                        for suite in run.suites for skip in suite.skipped]
    unknown, total, where = 0, 0, []
    for name, health, cuts_matter in _healths(run):
        if health.n == 0:
            continue
        if health.empty >= EMPTY_SHARE_WARNING - _EPS:
            count = round(health.empty * health.n)
            lines.append(f"{name}: {count} of {health.n} predictions ({health.empty:.0%}) are "
                         "empty — check the prompt, few-shot block and stop strings")
        if not cuts_matter:
            continue
        known = health.n - health.unknown
        if health.truncated is not None and health.truncated >= TRUNCATED_SHARE_WARNING - _EPS:
            count = round(health.truncated * known)
            of = f"{known} predictions whose ending is known" if health.unknown else \
                f"{health.n} predictions"
            lines.append(f"{name}: {count} of {of} ({health.truncated:.0%}) were cut at "
                         f"{_budget(health)} — raise generation.max_new_tokens in suite.yaml "
                         "or shorten the expected answer")
        if health.unknown:
            unknown, total = unknown + health.unknown, total + health.n
            where.append(name)
    if unknown:
        lines.append(f"{', '.join(where)}: whether {unknown} of {total} predictions were cut at "
                     "max_new_tokens is unknown (answers cached or recorded by an ftguard that "
                     "did not record it, or a backend that does not report how generation "
                     "ended)")
    return lines


def change_warnings(base: RunRecord, tuned: RunRecord) -> list[str]:
    """Lines for a comparison: each generate task of both runs whose empty or truncated share
    moved by at least :data:`CHANGE_WARNING_POINTS` percentage points, then the tuned run's
    own :func:`run_warnings` and the base run's, each prefixed ``tuned: `` / ``base: ``."""
    lines: list[str] = []
    before = {name: health for name, health, _ in _healths(base)}
    for name, after, cuts_matter in _healths(tuned):
        old = before.get(name)
        if old is None or old.n == 0 or after.n == 0:
            continue
        for what, b, t in (("empty predictions", old.empty, after.empty),
                           (f"predictions cut at {_budget(after)}",
                            old.truncated if cuts_matter else None, after.truncated)):
            if b is None or t is None or abs(t - b) * 100 < CHANGE_WARNING_POINTS - _EPS:
                continue
            points = round(t * 100) - round(b * 100)
            lines.append(f"{name}: {what} {b:.0%} -> {t:.0%} ({points:+d} points) in the "
                         "tuned run")
    lines += [f"tuned: {line}" for line in run_warnings(tuned)]
    lines += [f"base: {line}" for line in run_warnings(base)]
    return lines


def _healths(run: RunRecord) -> list[tuple[str, GenerationHealth, bool]]:
    """``(suite/task, health, cuts matter)`` of every generate task of ``run``, in record
    order; cuts do not matter to a task whose metrics all read only the answer's opening."""
    return [(f"{suite.name}/{task.name}", health, not reads_opening(task.metrics))
            for suite in run.suites for task in suite.tasks
            if (health := task_health(task)) is not None]


def reads_opening(names: Iterable[str]) -> bool:
    """Whether the metrics ``names`` (at least one) all score only how an answer opens
    (``Metric.reads_opening``: the refusal detectors and margins)."""
    from ftguard.metrics.registry import METRICS

    metrics = [METRICS.get(name) for name in names]
    return bool(metrics) and all(m is not None and m.reads_opening for m in metrics)


def _budget(health: GenerationHealth) -> str:
    return f"max_new_tokens={health.max_new_tokens}" if health.max_new_tokens else \
        "max_new_tokens"
