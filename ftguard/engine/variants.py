"""Running a task's variants on the items its own prompt was run on, and the consistency
metrics of its own result (:mod:`ftguard.metrics.consistency`).

Each variant is recorded as its own task ``TASK@VARIANT`` (same item ids, so compare pairs
base and tuned per variant with the usual paired tests); the task's own result keeps its
name and metrics and gets ``consistency``, ``mean_variant``, ``worst_variant`` and
``spread`` after them (the headline stays first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from ftguard.engine.settings import RunSettings
from ftguard.metrics.consistency import NAMES, consistent, mean_over_templates
from ftguard.record import MetricResult, SampleResult, TaskResult
from ftguard.suite import Task

RunOne = Callable[[Task, RunSettings, str], TaskResult]
"""Runs one task (its own or a variant's) under settings with a progress label."""
Aggregate = Callable[[str, list[SampleResult], RunSettings], MetricResult]


def run_with_variants(task: Task, settings: RunSettings, label: str, run: RunOne,
                      aggregate: Aggregate) -> list[TaskResult]:
    """The task's own result (with the consistency metrics when it has variants), then each
    variant's, all on the items the task's own run selected (``--limit``/``--subset``)."""
    own = run(task, settings, label)
    if not task.variants:
        return [own]
    chosen = {s.id for s in own.samples}
    whole = replace(settings, limit=None, subset=None)  # the items are chosen already
    results = []
    for variant in task.variants:
        assert variant.variant is not None
        kept = replace(variant, instances=[i for i in variant.instances if i.id in chosen])
        result = run(kept, whole, f"{label}@{variant.variant.name}")
        order = variant.variant.choice_order
        settings_ = {**result.settings, "variant_of": task.name,
                     **({"choice_order": order} if order is not None else {})}
        results.append(result.model_copy(update={"variant_of": task.name,
                                                 "settings": settings_}))
    return [with_consistency(own, results, settings, aggregate), *results]


def with_consistency(own: TaskResult, variants: Sequence[TaskResult], settings: RunSettings,
                     aggregate: Aggregate) -> TaskResult:
    """``own`` with each item's consistency scores and the four metrics of
    :data:`~ftguard.metrics.consistency.NAMES` appended to its metrics."""
    headline = next(iter(own.metrics))
    by_id = [{s.id: s for s in v.samples} for v in variants]
    samples = []
    for sample in own.samples:
        others = [ids[sample.id] for ids in by_id]  # every variant ran on exactly these ids
        templates = [sample, *others]
        row = [t.scores[headline] for t in templates]
        scores = {**sample.scores, "consistency": consistent([t.prediction for t in templates]),
                  "mean_variant": mean_over_templates(row)}
        stats = {**sample.stats, "worst_variant": row, "spread": row}
        samples.append(sample.model_copy(update={"scores": scores, "stats": stats}))
    metrics = {**own.metrics, **{name: aggregate(name, samples, settings) for name in NAMES}}
    return own.model_copy(update={"samples": samples, "metrics": metrics})
