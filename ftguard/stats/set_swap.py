"""Paired tests and intervals for *set* metrics: a value computed from the whole set of
per-item vectors that is not a function of their sum (equal-mass ECE, whose bins depend on
every item's confidence). The corpus machinery of :mod:`ftguard.stats.swap` cannot apply;
the same tests run on the item rows themselves:

- :func:`set_swap_test`: approximate randomisation with each item's two rows (base, tuned)
  swapped with probability 1/2 and ``set_fn(tuned*) - set_fn(base*)`` recomputed; exact over
  the 2^m swaps of the m items whose rows differ when m <= 16, else ``(1 + #) / (1 + B)``
  from ``resamples`` random swaps. The interval is the paired percentile bootstrap of the
  difference (items resampled jointly for both runs): the jackknife that corpus metrics use
  is inconsistent for a binned statistic (leaving one item out moves every bin edge), as it
  is for the median. The p-value, not the interval, carries the small-n guarantee.
- :func:`set_bootstrap`: one run's value with a percentile bootstrap interval over items.

``set_fn`` maps rows of shape ``(..., n, k)`` to values ``(...)`` (vectorised over leading
axes: swaps, resamples, leave-one-out sets).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ftguard.stats.inputs import statistics
from ftguard.stats.permutation import all_indicators, as_extreme
from ftguard.stats.power import EXACT_MAX_ITEMS
from ftguard.stats.result import PairedResult
from ftguard.stats.swap import paired_rows, swap_result

SetFn = Callable[[np.ndarray], np.ndarray]
_CHUNK_CELLS = 1 << 21
"""Float cells of the swapped rows per chunk (16 MiB)."""


def set_swap_test(base_rows: np.ndarray, tuned_rows: np.ndarray, set_fn: SetFn, *,
                  resamples: int = 10_000, seed: int = 1234,
                  confidence: float = 0.95) -> PairedResult:
    """Compare a set metric of two runs on the same items in the same order; rows of shape
    ``(n, k)`` per run."""
    b, t = paired_rows(base_rows, tuned_rows, resamples, confidence, "rows")
    n = b.shape[0]
    base_value, tuned_value = float(set_fn(b)), float(set_fn(t))
    delta = tuned_value - base_value
    differs = np.flatnonzero((b != t).any(axis=1))
    exact = differs.size <= EXACT_MAX_ITEMS
    scale = abs(delta) + abs(base_value) + abs(tuned_value)
    if exact:
        p = _exact_p(b, t, differs, set_fn, delta, scale)
    else:
        p = _monte_carlo_p(b, t, set_fn, delta, scale, resamples, seed)
    # joint resamples of the items for both runs (not the swap test's coins)
    deltas = _bootstrap(lambda idx: set_fn(t[idx]) - set_fn(b[idx]), *b.shape, resamples,
                        np.random.default_rng(seed + 1))
    low, high = _percentile(deltas, delta, confidence)
    spread = float(deltas.std(ddof=1)) * np.sqrt(n)  # per-item scale, as the MDE expects
    # the interval always resamples (multinomial bootstrap); the p-value only when not exact
    return swap_result(base_value, tuned_value, p, (low, high), n=n, exact=exact,
                       spread=spread, resamples=resamples, seed=seed, confidence=confidence,
                       resampling="multinomial" if exact else "swap")


def _swapped(b: np.ndarray, t: np.ndarray, coins: np.ndarray,
             items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both runs' rows under each swap pattern: ``coins`` (P, len(items)) swaps those items."""
    flip = coins.astype(bool)[..., None]
    base = np.broadcast_to(b, (coins.shape[0], *b.shape)).copy()
    tuned = np.broadcast_to(t, (coins.shape[0], *t.shape)).copy()
    base[:, items] = np.where(flip, t[items], b[items])
    tuned[:, items] = np.where(flip, b[items], t[items])
    return base, tuned


def _extreme(b: np.ndarray, t: np.ndarray, coins: np.ndarray, items: np.ndarray,
             set_fn: SetFn, delta: float, scale: float) -> int:
    base, tuned = _swapped(b, t, coins, items)
    swapped = np.asarray(set_fn(tuned) - set_fn(base), dtype=np.float64)
    return int(as_extreme(np.array([delta]), swapped[:, None], np.array([scale]))[0])


def _chunk(n: int, k: int) -> int:
    return max(1, _CHUNK_CELLS // (2 * n * k))


def _exact_p(b: np.ndarray, t: np.ndarray, differs: np.ndarray, set_fn: SetFn,
             delta: float, scale: float) -> float:
    bits = all_indicators(differs.size)
    step = _chunk(*b.shape)
    hits = sum(_extreme(b, t, bits[i:i + step], differs, set_fn, delta, scale)
               for i in range(0, bits.shape[0], step))
    return hits / bits.shape[0]


def _monte_carlo_p(b: np.ndarray, t: np.ndarray, set_fn: SetFn, delta: float, scale: float,
                   resamples: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    items = np.arange(b.shape[0])
    step, hits = _chunk(*b.shape), 0
    for start in range(0, resamples, step):
        coins = rng.integers(0, 2, size=(min(step, resamples - start), b.shape[0]))
        hits += _extreme(b, t, coins, items, set_fn, delta, scale)
    return (1 + hits) / (1 + resamples)


def _bootstrap(values_of: Callable[[np.ndarray], np.ndarray], n: int, k: int,
               resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``values_of(rows)`` over ``resamples`` bootstrap draws of item indices (B, n)."""
    step = _chunk(n, k)
    return np.concatenate([np.asarray(values_of(rng.integers(0, n, size=(min(step, resamples - start), n))),
                                      dtype=np.float64)
                           for start in range(0, resamples, step)])


def _percentile(boot: np.ndarray, value: float, confidence: float) -> tuple[float, float]:
    """Percentile interval of ``boot``, widened to hold ``value``."""
    alpha = 1 - confidence
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return min(float(low), value), max(float(high), value)


def set_bootstrap(rows: np.ndarray, set_fn: SetFn, *, resamples: int = 1000, seed: int = 1234,
                  confidence: float = 0.95) -> tuple[float, float, float, float | None]:
    """One run's set value and its percentile bootstrap interval over items:
    ``(value, low, high, stderr)`` (the value kept inside its interval)."""
    x = statistics("rows", rows)
    value = float(set_fn(x))
    boot = _bootstrap(lambda idx: set_fn(x[idx]), *x.shape, resamples,
                      np.random.default_rng(seed))
    stderr = float(boot.std(ddof=1)) if resamples > 1 and x.shape[0] > 1 else None
    return value, *_percentile(boot, value, confidence), stderr
