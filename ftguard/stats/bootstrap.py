"""Paired bootstrap for continuous per-item scores and for corpus metrics.

Both runs are resampled with the *same* item weights (:mod:`ftguard.stats.resample`), so
the spread of the resampled difference reflects how much the difference varies across
items, not how much each run's value does -- on correlated runs that is several times
narrower, which is the point of pairing.

- interval: percentile interval of the resampled differences ``d*``: the
  ``ceil(B alpha/2)``-th smallest and largest of B resamples (alpha = 1 - confidence).
- p-value: the inversion of that interval,
  ``p = 2 min(#{d* <= 0}, #{d* >= 0}) / B`` (at least 1/B, at most 1): the smallest alpha
  at which the interval excludes 0, so ``p < 1 - confidence`` exactly when it does
  (for ``resamples > 1 / (1 - confidence)``). It equals the centred-statistic p-value
  ``2 min(P(d* - d >= d), P(d* - d <= -d))`` when the bootstrap distribution is symmetric
  about the observed ``d``, and unlike that one it never contradicts the interval a report
  shows next to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ftguard.stats.inputs import scores, statistics
from ftguard.stats.resample import Scheme, resampled_sums
from ftguard.stats.result import Method, PairedResult

CorpusFn = Callable[[np.ndarray], np.ndarray]


def paired_bootstrap(base: np.ndarray, tuned: np.ndarray, *, resamples: int = 10_000,
                     seed: int = 1234, confidence: float = 0.95,
                     scheme: Scheme = "auto") -> PairedResult:
    """Compare the means of continuous per-item scores (F1, ROUGE) of two runs on the same
    items in the same order: ``delta = mean(tuned) - mean(base)``, percentile interval and
    p-value from ``resamples`` paired resamples of the items."""
    b = scores("base", base)
    t = scores("tuned", tuned)
    if b.shape != t.shape:
        raise ValueError(f"base and tuned must score the same items: {b.size} vs {t.size}")
    _check(b.size, resamples, confidence)
    # The mean difference of a resample is the resampled mean of the per-item differences.
    sums, used = resampled_sums((t - b)[:, None], resamples, seed, scheme)
    deltas = sums[:, 0] / b.size
    return _result(float(b.mean()), float(t.mean()), float(np.mean(t - b)), deltas,
                   n=b.size, method="paired-bootstrap", confidence=confidence,
                   resampling=used, seed=seed)


def paired_corpus_bootstrap(base_stats: np.ndarray, tuned_stats: np.ndarray,
                            corpus_fn: CorpusFn, *, resamples: int = 10_000,
                            seed: int = 1234, confidence: float = 0.95,
                            scheme: Scheme = "auto") -> PairedResult:
    """Compare a corpus metric (BLEU, chrF, perplexity, macro-F1) of two runs on the same
    items in the same order.

    ``base_stats`` and ``tuned_stats`` hold per-item sufficient statistics, shape
    ``(n, k)``; ``corpus_fn`` maps summed statistics ``(..., k)`` to metric values ``(...)``
    (the ``corpus_fn`` of :class:`ftguard.metrics.base.Metric`). Each resample recomputes
    the metric of both runs on the same resampled items.
    """
    b = statistics("base_stats", base_stats)
    t = statistics("tuned_stats", tuned_stats)
    if b.shape != t.shape:
        raise ValueError(f"base_stats and tuned_stats must have the same shape (same items, "
                         f"same statistics): {b.shape} vs {t.shape}")
    n, k = b.shape
    _check(n, resamples, confidence)
    sums, used = resampled_sums(np.hstack([b, t]), resamples, seed, scheme)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        deltas = np.asarray(corpus_fn(sums[:, k:]) - corpus_fn(sums[:, :k]), dtype=np.float64)
        base_value = float(corpus_fn(b.sum(axis=0)))
        tuned_value = float(corpus_fn(t.sum(axis=0)))
    bad = int(np.count_nonzero(~np.isfinite(deltas)))
    if bad or not math.isfinite(base_value) or not math.isfinite(tuned_value):
        raise ValueError(f"corpus_fn gave a non-finite value (on the full data or on {bad} "
                         f"of {resamples} resamples); it must be finite for any sum of "
                         "per-item statistics")
    return _result(base_value, tuned_value, tuned_value - base_value, deltas, n=n,
                   method="corpus-bootstrap", confidence=confidence, resampling=used,
                   seed=seed)


def percentile_interval(deltas: np.ndarray, confidence: float) -> tuple[float, float]:
    """The ``ceil(B alpha/2)``-th smallest and largest of ``B`` resampled differences."""
    size = deltas.size
    j = max(1, math.ceil(size * (1 - confidence) / 2 - 1e-9))
    ordered = np.partition(deltas, (j - 1, size - j))
    return float(ordered[j - 1]), float(ordered[size - j])


def percentile_p_value(deltas: np.ndarray) -> float:
    """Two-sided p-value dual to :func:`percentile_interval` (see the module docstring)."""
    tail = min(int(np.count_nonzero(deltas <= 0)), int(np.count_nonzero(deltas >= 0)))
    return min(1.0, max(1, 2 * tail) / deltas.size)


def _result(base: float, tuned: float, delta: float, deltas: np.ndarray, *, n: int,
            method: Method, confidence: float, resampling: str, seed: int) -> PairedResult:
    low, high = percentile_interval(deltas, confidence)
    return PairedResult(base=base, tuned=tuned, delta=delta, ci_low=low, ci_high=high,
                        p_value=percentile_p_value(deltas), n=n, method=method,
                        confidence=confidence, resamples=int(deltas.size),
                        resampling=resampling, seed=seed)


def _check(n: int, resamples: int, confidence: float) -> None:
    if n < 2:
        raise ValueError(f"a bootstrap needs at least 2 items, got {n}")
    if resamples < 100:
        raise ValueError(f"resamples must be >= 100, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
