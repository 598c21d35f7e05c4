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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np

Kind = Literal["generate", "choice", "classify", "perplexity"]
Aggregation = Literal["mean", "corpus", "set"]
CorpusFn = Callable[[np.ndarray], np.ndarray]
SetFn = Callable[[np.ndarray], np.ndarray]
F = TypeVar("F", bound=Callable[..., object])


class MetricLoadError(Exception):
    """A metric name from outside ftguard that cannot be resolved; the message says why and
    how to fix it (:mod:`ftguard.metrics.external`)."""


@dataclass(frozen=True)
class ScoredItem:
    """One answered item as a batch-scored metric sees it."""

    id: str
    """The item's id in its task."""
    prediction: str
    """The generated text, or the chosen choice / label."""
    references: tuple[str, ...]
    """Reference answers (generate), or the correct choice / label."""
    fields: Mapping[str, Any] = field(default_factory=dict)
    """The item's own fields: its JSONL row."""


BatchFn = Callable[[Sequence[ScoredItem], Mapping[str, Any], Sequence[str]],
                   dict[str, list[Any]]]
"""``(items, args, names) -> {name: per-item values}``: a score (mean metrics) or a
statistics row (corpus metrics) per item for each of ``names``, the metrics of one family
a task asks for; ``args`` is the task's ``metric_args`` entry for the family."""
RecomputeFn = Callable[[list[str], list[tuple[str, ...]]], float]
"""``(predictions, references) -> value`` of a metric recomputed on any set of items."""


@dataclass(frozen=True)
class MetricSource:
    """Where a metric's code comes from, when it is not ftguard's own."""

    module: str
    """Python module (``mypkg.scoring``), or an evaluate module's resolved path or id."""
    package: str | None = None
    """Distribution that installs the module (None: on PYTHONPATH, or a local folder)."""
    version: str | None = None
    """That distribution's version, or a local evaluate module's content hash."""


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
    batch: BatchFn | None = None
    """Scored by this hook over all of a task's items at once (user metrics, evaluate
    modules, BERTScore: :mod:`ftguard.metrics.batch`), not by :mod:`ftguard.metrics.score`."""
    family: str = ""
    """Key of the task's ``metric_args`` entry the metric reads (default: its name);
    metrics of one family sharing one ``batch`` hook are scored in one call."""
    source: MetricSource | None = None
    """User metrics and evaluate modules: their module and package version (recorded)."""
    recompute: RecomputeFn | None = None
    """Set metrics recomputed from the answers themselves (an evaluate module declared
    ``corpus``): the value of any set of items; resamples and swaps call it."""
    identity: Callable[[Mapping[str, Any]], str] | None = None
    """The metric's identity under a task's args (BERTScore: encoder name + fingerprint),
    recorded as its signature and part of the result cache key."""

    def __post_init__(self) -> None:
        if (self.aggregation == "corpus") != (self.corpus_fn is not None):
            raise ValueError(f"metric {self.name!r}: corpus_fn is required exactly for "
                             "corpus aggregation")
        if self.recompute is not None:
            if self.aggregation != "set" or self.set_fn is not None:
                raise ValueError(f"metric {self.name!r}: recompute is for set metrics "
                                 "without set_fn")
        elif (self.aggregation == "set") != (self.set_fn is not None):
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


def batch_metrics(names: dict[str, str], *, higher_is_better: bool, kind: Kind | tuple[Kind, ...],
                  family: str, identity: Callable[[Mapping[str, Any]], str] | None = None,
                  bounds: tuple[float, float] | None = None) -> Callable[[F], F]:
    """Register the mean metrics ``names`` (name -> description) of one ``family``, all
    scored by the decorated batch hook (:data:`BatchFn`) in one call per task."""
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)

    def register(fn: F) -> F:
        for name, description in names.items():
            _register(fn, Metric(name, higher_is_better, kinds, "mean", False, description,
                                 bounds=bounds, batch=fn, family=family,  # type: ignore[arg-type]
                                 identity=identity))
        return fn
    return register
