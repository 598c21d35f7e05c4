"""The pytest nodes of ``pytest --ftguard``: suite files, tasks and one item per gated check.

Every ``suite.yaml`` becomes a :class:`SuiteFile` with one :class:`TaskNode` per task and one
:class:`GateItem` per :class:`Check`, i.e. per gate rule and (task, metric) row it selects:
``legal/suite.yaml::clause_type::accuracy[no_regression]``. The items' setup and call
delegate to the session (:class:`ftguard.pytest_session.GateSession`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ftguard.errors import FtguardError
from ftguard.gate import Policy, Rule
from ftguard.record import Comparison, ComparisonRow
from ftguard.suite import Suite

if TYPE_CHECKING:
    from ftguard.pytest_session import GateSession

SUITE_FILE = "suite.yaml"


@dataclass(frozen=True)
class Check:
    """One gated check: a rule applied to one (suite, task, metric) row."""

    suite: str
    task: str
    metric: str
    """Metric name; ``headline`` when the task's metrics are known only after evaluation."""
    rule: Rule
    name: str
    """Item name: the metric and the rule's condition, ``accuracy[not-regressed]`` (with the
    slice for a slice's row: ``acc[topic=contracts][not-regressed]``)."""
    slice: str | None = None
    """The slice ``FIELD=VALUE`` the check is on; None for the task's own row."""

    def row(self, comparison: Comparison) -> ComparisonRow | None:
        for row in comparison.rows:
            if (row.suite, row.task, row.slice) == (self.suite, self.task, self.slice) and (
                    row.metric == self.metric or (self.metric == "headline" and row.headline)):
                return row
        return None


def checks_of(suite: Suite, policy: Policy) -> list[Check]:
    """The gated checks of ``suite``: every (rule, task metric) pair the rule selects."""
    from ftguard.metrics.consistency import NAMES
    from ftguard.metrics.registry import expand_metric_names
    from ftguard.slices import slice_counts

    out: list[Check] = []
    for task in (t for own in suite.tasks for t in (own, *own.variants)):
        spec = task.spec
        if spec.kind == "lm_eval":  # from lm-eval's task YAML (empty: known after the run)
            metrics = list(task.lm_eval_metrics)
        else:
            metrics = expand_metric_names(spec.kind, spec.metric_names, spec.labels)
            metrics += list(NAMES) if task.variants else []
        names: set[str] = set()
        slices = [None, *slice_counts([i.slices for i in task.instances])]
        for rule, part in ((r, p) for r in policy.rules for p in slices):
            if metrics:
                picked = [m for i, m in enumerate(metrics) if rule.selects(ComparisonRow.model_construct(
                    suite=suite.name, task=task.name, metric=m, role=suite.spec.role,
                    headline=i == 0, slice=part))]
            else:
                picked = [rule.metric] if rule.selects(ComparisonRow.model_construct(
                    suite=suite.name, task=task.name, metric=rule.metric, role=suite.spec.role,
                    headline=True, slice=part)) else []
            for metric in picked:
                label = f"{metric}[{part}]" if part else metric
                name = _unique(f"{label}[{rule.condition}]", names)
                out.append(Check(suite.name, task.name, metric, rule, name, part))
    return out


def suite_roots(path: Path, skip: list[str]) -> list[Path]:
    import fnmatch

    if path.is_file():
        return [path.parent] if path.name == SUITE_FILE else []
    roots = []
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not any(fnmatch.fnmatch(d, p) for p in skip))
        if SUITE_FILE in files:
            roots.append(Path(folder))
    return roots


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate


class SuiteFile(pytest.File):
    """A ``suite.yaml``: one :class:`TaskNode` per task that has gated checks (of those
    ``--ftguard-tasks`` selects)."""

    gate: GateSession

    def collect(self) -> Iterator[pytest.Collector]:
        try:
            suite = self.gate.suite_at(self.path.parent)
        except FtguardError as exc:
            raise self.CollectError(f"ftguard: {exc}") from None
        from ftguard.engine.tasks import is_selected

        gated = checks_of(suite, self.gate.policy)
        names = self.gate.options.tasks  # --ftguard-tasks
        checks = [c for c in gated if is_selected(names, c.suite, c.task)]
        if not gated:
            self.warn(pytest.PytestWarning(
                f"ftguard: suite {suite.name} ({suite.spec.role}) has no gated checks under "
                f"the policy ({'; '.join(r.describe() for r in self.gate.policy.rules)}); add "
                "a gate: section to its suite.yaml or pass --ftguard-policy."))
        for task in dict.fromkeys(c.task for c in checks):
            node = TaskNode.from_parent(self, name=task)
            node.suite, node.checks = suite, [c for c in checks if c.task == task]
            yield node


class TaskNode(pytest.Collector):
    """A task of a suite: one :class:`GateItem` per gated check."""

    suite: Suite
    checks: list[Check]

    def collect(self) -> Iterator[pytest.Item]:
        for check in self.checks:
            yield GateItem.from_parent(self, name=check.name, check=check, suite=self.suite)


class GateItem(pytest.Item):
    """One gated check; its verdict comes from the session's single comparison."""

    def __init__(self, *, check: Check, suite: Suite, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check, self.suite = check, suite
        self.gate: GateSession = self.parent.parent.gate  # type: ignore[union-attr]
        self.extra_keyword_matches.update({check.suite, check.task, check.metric,
                                           check.rule.kind, *([check.slice] if check.slice else [])})

    def setup(self) -> None:
        self.gate.prepare(self)

    def runtest(self) -> None:
        self.gate.judge(self)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        c = self.check
        return self.path, None, f"ftguard {c.suite}/{c.task} {self.name}"


__all__ = ["Check", "GateItem", "SuiteFile", "TaskNode", "checks_of", "suite_roots"]
