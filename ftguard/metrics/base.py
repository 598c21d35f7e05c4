"""What a metric is: a name, a direction, the task kinds it applies to, how it aggregates.

A family module defines each of its metrics next to its function with :func:`mean_metric`
(on the per-sample scorer) or :func:`corpus_metric` (on the ``corpus_fn``);
:mod:`ftguard.metrics.registry` collects them.

A *mean* metric has one score per sample and the task value is their mean. A *corpus*
metric keeps per-sample sufficient statistics (a fixed-length vector per sample); the task
value is ``corpus_fn`` applied to their sum, which is what lets bootstrap resampling work on
summed statistics instead of recomputing from text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np

Kind = Literal["generate", "choice", "classify", "perplexity"]
Aggregation = Literal["mean", "corpus", "set"]
CorpusFn = Callable[[np.ndarray], np.ndarray]
SetFn = Callable[[np.ndarray], np.ndarray]
F = TypeVar("F", bound=Callable[..., object])


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
    """``mean`` of per-sample scores, ``corpus``: ``corpus_fn`` of summed statistics, or
    ``set``: ``set_fn`` of the per-sample statistic rows themselves (not a function of their
    sum: equal-mass ECE)."""
    binary: bool
    """Per-sample scores are 0/1 (the Wilson interval applies)."""
    description: str
    """One line for help texts and reports."""
    corpus_fn: CorpusFn | None = None
    """Corpus metrics only: maps summed per-sample statistics of shape ``(..., k)`` to the
    metric value of shape ``(...)``; vectorised over leading axes (bootstrap: ``(B, k)``)."""
    bounds: tuple[float, float] | None = None
    """Smallest and largest possible value; confidence intervals are clipped to it."""
    set_fn: SetFn | None = None
    """Set metrics only: maps per-sample rows ``(..., n, k)`` to values ``(...)``;
    vectorised over leading axes (swaps, resamples)."""
    reference_free: bool = False
    """Scored without a reference answer (the answer alone, the item's instructions, or
    log-probabilities): a generate task whose metrics all are needs no target."""
    reads_opening: bool = False
    """Scores only how the answer opens (a refusal detector's first sentences, the openers'
    log-probabilities): an answer cut at ``max_new_tokens`` scores as the whole one would, so
    a task whose metrics all read the opening is not warned about truncation."""

    def __post_init__(self) -> None:
        if (self.aggregation == "corpus") != (self.corpus_fn is not None):
            raise ValueError(f"metric {self.name!r}: corpus_fn is required exactly for "
                             "corpus aggregation")
        if (self.aggregation == "set") != (self.set_fn is not None):
            raise ValueError(f"metric {self.name!r}: set_fn is required exactly for set "
                             "aggregation")


_REGISTERED: list[tuple[str, Metric]] = []
"""(defining module, metric), in registration order."""
_PARAMETRISED: set[str] = set()


def mean_metric(name: str, *, higher_is_better: bool, kind: Kind | tuple[Kind, ...],
                binary: bool, description: str,
                bounds: tuple[float, float] | None = (0.0, 1.0),
                reference_free: bool = False,
                reads_opening: bool = False) -> Callable[[F], F]:
    """Register the mean metric ``name``, defined next to the decorated per-sample function
    (returned unchanged); ``kind`` may name several task kinds. Decorators stacked on one
    function register bottom-up."""
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)

    def register(fn: F) -> F:
        _register(fn, Metric(name, higher_is_better, kinds, "mean", binary, description,
                             bounds=bounds, reference_free=reference_free,
                             reads_opening=reads_opening))
        return fn
    return register


def corpus_metric(name: str, *, higher_is_better: bool, kind: Kind, description: str,
                  parametrised: bool = False,
                  reference_free: bool = False) -> Callable[[CorpusFn], CorpusFn]:
    """Register the corpus metric ``name`` whose ``corpus_fn`` is the decorated function;
    a ``parametrised`` one takes a label argument (``precision[LABEL]``)."""
    def register(fn: CorpusFn) -> CorpusFn:
        _register(fn, Metric(name, higher_is_better, (kind,), "corpus", False, description, fn,
                             reference_free=reference_free))
        if parametrised:
            _PARAMETRISED.add(name)
        return fn
    return register


def set_metric(name: str, *, higher_is_better: bool, kind: Kind | tuple[Kind, ...],
               description: str,
               bounds: tuple[float, float] | None = (0.0, 1.0)) -> Callable[[SetFn], SetFn]:
    """Register the set metric ``name`` whose ``set_fn`` is the decorated function."""
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)

    def register(fn: SetFn) -> SetFn:
        _register(fn, Metric(name, higher_is_better, kinds, "set", False, description,
                             bounds=bounds, set_fn=fn))
        return fn
    return register


def _register(fn: Callable[..., object], metric: Metric) -> None:
    if any(m.name == metric.name for _, m in _REGISTERED):
        raise ValueError(f"metric {metric.name!r} is registered twice")
    _REGISTERED.append((fn.__module__, metric))


def registered(module: str) -> list[Metric]:
    """The metrics the module called ``module`` registered, in registration order."""
    return [m for owner, m in _REGISTERED if owner == module]


def parametrised() -> frozenset[str]:
    """Base names of the registered metrics that take a label argument."""
    return frozenset(_PARAMETRISED)
