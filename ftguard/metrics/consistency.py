"""Consistency across a task's prompt templates: its own prompt and its ``variants:``.

Every template asks the same items; ``T`` templates give each item ``T`` predictions and
``T`` per-item scores of the task's headline metric (a mean metric). On the task's own
result:

- ``consistency``: per item 1 when every template predicts the same answer, else 0; a choice
  or label is compared by its text, not its position (answer orders may differ), generated
  text after stripping surrounding whitespace (the extracted answer when the task has
  ``extract:``, so differently worded replies with the same answer agree). Mean metric (Wilson interval, McNemar).
- ``mean_variant``: per item the mean of the headline over the templates. Mean metric
  (Student-t interval, sign-flip test).
- ``worst_variant``: the lowest of the templates' task-level headline values (higher is
  better), and ``spread``: the highest minus the lowest (lower is better). Neither is a mean
  of per-item values: each item's row holds its headline score under every template
  (``(n, T)``), and intervals and paired tests recompute them on resampled or swapped items
  (the set machinery, :mod:`ftguard.stats.set_swap`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ftguard.metrics.base import mean_metric, set_metric

NAMES: tuple[str, ...] = ("consistency", "mean_variant", "worst_variant", "spread")
"""The metrics a task with variants gets, in the order its result lists them (after its own)."""


@mean_metric("consistency", higher_is_better=True, kind=(), binary=True,
             description="share of items predicted the same under the task's prompt and every "
                         "variant (answers compared by content)")
def consistent(predictions: Sequence[str]) -> float:
    """1.0 when every template's prediction of one item is the same text, else 0.0."""
    return float(len({p.strip() for p in predictions}) <= 1)


@mean_metric("mean_variant", higher_is_better=True, kind=(), binary=False,
             description="headline metric averaged over the task's prompt and its variants",
             bounds=None)
def mean_over_templates(scores: Sequence[float]) -> float:
    """One item's headline score averaged over the templates."""
    return float(np.mean(scores))


@set_metric("worst_variant", higher_is_better=True, kind=(), bounds=None,
            description="lowest headline value over the task's prompt and its variants")
def worst_template(rows: np.ndarray) -> np.ndarray:
    """Lowest column mean of per-item rows ``(..., n, T)`` (one column per template)."""
    return np.asarray(rows, dtype=np.float64).mean(axis=-2).min(axis=-1)


@set_metric("spread", higher_is_better=False, kind=(), bounds=None,
            description="highest minus lowest headline value over the task's prompt and its "
                        "variants")
def template_spread(rows: np.ndarray) -> np.ndarray:
    """Highest minus lowest column mean of per-item rows ``(..., n, T)``."""
    means = np.asarray(rows, dtype=np.float64).mean(axis=-2)
    return means.max(axis=-1) - means.min(axis=-1)
