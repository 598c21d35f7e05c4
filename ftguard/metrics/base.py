"""What a metric is: a name, a direction, the task kinds it applies to, how it aggregates.

A *mean* metric has one score per sample and the task value is their mean. A *corpus*
metric keeps per-sample sufficient statistics (a fixed-length vector per sample); the task
value is ``corpus_fn`` applied to their sum, which is what lets bootstrap resampling work on
summed statistics instead of recomputing from text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["generate", "choice", "classify", "perplexity"]
Aggregation = Literal["mean", "corpus"]
CorpusFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Metric:
    """A metric's definition; registered by name in :mod:`ftguard.metrics.registry`."""

    name: str
    """Registry name (``f1``, ``bleu``); parametrised metrics carry their argument
    (``precision[termination]``)."""
    higher_is_better: bool
    """Direction of improvement."""
    kinds: tuple[str, ...]
    """Task kinds the metric applies to: ``generate | choice | classify | perplexity``."""
    aggregation: Aggregation
    """``mean`` of per-sample scores, or ``corpus``: ``corpus_fn`` of summed statistics."""
    binary: bool
    """Per-sample scores are 0/1 (the Wilson interval applies)."""
    description: str
    """One line for help texts and reports."""
    corpus_fn: CorpusFn | None = None
    """Corpus metrics only: maps summed per-sample statistics of shape ``(..., k)`` to the
    metric value of shape ``(...)``; vectorised over leading axes (bootstrap: ``(B, k)``)."""
    bounds: tuple[float, float] | None = None
    """Smallest and largest possible value; confidence intervals are clipped to it."""

    def __post_init__(self) -> None:
        if (self.aggregation == "corpus") != (self.corpus_fn is not None):
            raise ValueError(f"metric {self.name!r}: corpus_fn is required exactly for "
                             "corpus aggregation")
