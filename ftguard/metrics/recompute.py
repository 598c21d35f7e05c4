"""Metrics recomputed from the answers on every resample (an evaluate module declared
``corpus``): not a mean over items and not a function of summed statistics.

They run through the *set* machinery of :mod:`ftguard.stats.set_swap` unchanged: each
item's row is one number, the index of its (prediction, references) in a table of the
distinct answers, and ``set_fn`` recomputes the metric on the answers a set of rows names.
Two runs that gave an item the same answer give it the same row, so the swap test's exact
enumeration only flips items whose answers differ.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ftguard.metrics.aggregate import MetricValue
from ftguard.metrics.base import Metric, RecomputeFn
from ftguard.metrics.batch import Answered, references
from ftguard.stats.result import PairedResult


class _Table:
    """Distinct (prediction, references) answers, numbered in order of first sight."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, tuple[str, ...]], int] = {}
        self.answers: list[tuple[str, tuple[str, ...]]] = []

    def rows(self, samples: Sequence[Answered]) -> np.ndarray:
        out = []
        for sample in samples:
            key = (sample.prediction, references(sample))
            if key not in self.index:
                self.index[key] = len(self.answers)
                self.answers.append(key)
            out.append([float(self.index[key])])
        return np.array(out, dtype=np.float64)

    def set_fn(self, recompute: RecomputeFn):
        def values(rows: np.ndarray) -> np.ndarray:
            flat = rows.reshape(-1, rows.shape[-2])
            out = []
            for picks in flat.astype(np.int64):
                chosen = [self.answers[i] for i in picks]
                out.append(recompute([p for p, _ in chosen], [r for _, r in chosen]))
            return np.array(out, dtype=np.float64).reshape(rows.shape[:-2])
        return values


def recomputed_value(metric: Metric, samples: Sequence[Answered], *, seed: int,
                     resamples: int, confidence: float = 0.95) -> MetricValue:
    """The metric on all ``samples`` with its percentile bootstrap interval over items."""
    from ftguard.stats.set_swap import set_bootstrap

    assert metric.recompute is not None
    table = _Table()
    rows = table.rows(samples)
    value, low, high, stderr = set_bootstrap(rows, table.set_fn(metric.recompute),
                                             resamples=resamples, seed=seed,
                                             confidence=confidence)
    return MetricValue(value, low, high, stderr, len(samples), metric.higher_is_better,
                       "bootstrap")


def recomputed_test(metric: Metric, base: Sequence[Answered], tuned: Sequence[Answered], *,
                    resamples: int, seed: int) -> PairedResult:
    """The paired swap test of two runs' recomputed values on the same items in order."""
    from ftguard.stats.set_swap import set_swap_test

    assert metric.recompute is not None
    table = _Table()
    base_rows, tuned_rows = table.rows(base), table.rows(tuned)
    return set_swap_test(base_rows, tuned_rows, table.set_fn(metric.recompute),
                         resamples=resamples, seed=seed)
