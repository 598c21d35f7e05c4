"""Per-slice metrics of a task's result: the same aggregate and interval as the task's own,
over each slice's items (:mod:`ftguard.slices`)."""

from __future__ import annotations

from collections.abc import Callable

from ftguard.engine.settings import RunSettings
from ftguard.record import MetricResult, SampleResult, TaskResult
from ftguard.suite import Task

Aggregate = Callable[[str, list[SampleResult], RunSettings], MetricResult]


def with_slices(result: TaskResult, task: Task, settings: RunSettings,
                aggregate: Aggregate) -> TaskResult:
    """``result`` with each sample's slices and each slice's metrics (every metric of the
    task, consistency included); unchanged for a task without ``slice_field`` and for a
    variant's result."""
    if task.spec.slice_field is None or result.variant_of is not None:
        return result
    by_id = {i.id: i.slices for i in task.instances}
    samples = [s.model_copy(update={"slices": list(by_id.get(s.id, ()))})
               for s in result.samples]
    members: dict[str, list[SampleResult]] = {}
    for sample in samples:
        for name in sample.slices:
            members.setdefault(name, []).append(sample)
    slices = {name: {metric: aggregate(metric, items, settings) for metric in result.metrics}
              for name, items in sorted(members.items())}
    return result.model_copy(update={"samples": samples, "slices": slices})
