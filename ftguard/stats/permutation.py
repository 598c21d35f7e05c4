"""Permutation tests for paired comparisons: a false-alarm rate at most alpha at every n.

Under "no difference" the two runs are exchangeable within each item: which of an item's
two values came from the tuned run is a coin flip. Flipping those coins gives the null
distribution exactly, however few items there are and however skewed or tied their scores
are. (The percentile bootstrap it replaces assumes the resampled differences look like the
population's, which fails below a few dozen items: 3 documents gave p = 0.0001.)

- :func:`sign_flip_test` -- mean of continuous per-item scores (F1, ROUGE). Flipping an
  item's coin flips the sign of its difference ``d_i = tuned_i - base_i``; the statistic is
  ``sum(d)``. Items with ``d_i = 0`` contribute nothing, so the p-value enumerates the
  ``2^m`` sign patterns of the ``m`` non-zero differences when ``m <= EXACT_MAX_ITEMS``
  (16: 65,536 patterns), else draws ``resamples`` random patterns and reports
  ``(1 + #{|T*| >= |T|}) / (1 + B)``, which is a valid p-value at any B. |T*| within a
  relative 1e-9 of |T| counts as a tie (the same sums added in another order).
- :func:`~ftguard.stats.swap.paired_swap_test` (in :mod:`ftguard.stats.swap`) -- corpus
  metrics (BLEU, chrF, perplexity, macro-F1) from summed per-item statistics: approximate
  randomisation (Riezler & Maxwell 2005; Koehn 2004), each item's two statistic vectors
  swapped with probability 1/2, statistic
  ``corpus_fn(tuned*) - corpus_fn(base*)``. Swapped sums are the totals plus
  ``W @ (base - tuned)`` for the 0/1 swap matrix ``W``, so it is one matrix product.
  Exact over the 2^m swaps of the m items whose statistics differ when m <= 16.

Both have batch forms for simulations (:func:`sign_flip_p_values`,
:func:`~ftguard.stats.swap.paired_swap_p_values`): many pairs of runs at once, each row
getting exactly the p-value the single test reports (``tests/test_stats_small_n.py`` checks the false-alarm
rate with them at n = 3 ... 500).

Confidence intervals invert the sign-flip test under a shift model: the interval holds every
``delta`` for which the test of ``d - delta`` does not reject. For one sign pattern with
flipped set F, ``|sum_i s_i (d_i - delta)| >= |sum_i (d_i - delta)|`` holds exactly when
``delta`` lies between the mean of ``d`` over F and over its complement (two linear
factors of a difference of squares), so the p-value at ``delta`` counts the patterns whose
interval contains ``delta``, and the confidence set is read off the sorted endpoints
exactly -- no bisection, and no assumption that the p-value is monotone (the reported
interval is the hull of the non-rejected deltas). Patterns that flip no item or every item
contain every ``delta``: with ``2 / 2^n >= alpha`` (n <= 5 at 95%) nothing can be rejected
and both ends are infinite. Exact over all n items when ``n <= EXACT_MAX_ITEMS``, else over
the Monte Carlo patterns (the same ones as the p-value's, so p < alpha exactly when the
interval excludes 0, up to float rounding; when n > 16 but only m <= 16 differences are
non-zero the p-value is exact and the interval Monte Carlo). With every difference 0 the
interval is [0, 0] (n >= 6): under the shift model the runs agree on these items. For the
swap test the interval is that of the mean of the jackknife pseudo-values
``n D - (n - 1) D_(-i)`` of the corpus difference D (simulated coverage of the 95%
interval for a perplexity change: 0.93 at n = 10, 0.96 at 30 and 200); it is not dual to
the swap p-value, and ``delta`` stays the plain corpus difference.

From ``PAIRED_T_MIN_ITEMS`` (20,000) items on the sign-flip test becomes a paired t-test
and t-interval (method ``paired-t``), and the swap test's interval a t-interval of the
pseudo-values: there the central limit theorem holds for bounded scores and the Monte
Carlo costs n * B coins (0.2 s at 20,000 items and 10,000 resamples on 2 cores, linear in
n). The swap p-value stays Monte Carlo (100,000 items: 0.6 s for perplexity, 1.6 s for
BLEU's 10 statistics).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.stats import t as student_t

from ftguard.stats.inputs import scores
from ftguard.stats.power import EXACT_MAX_ITEMS, exact_testable, mde_for
from ftguard.stats.resample import one_blas_thread
from ftguard.stats.result import PairedResult

CorpusFn = Callable[[np.ndarray], np.ndarray]

PAIRED_T_MIN_ITEMS = 20_000
""":func:`sign_flip_test` uses the paired t-test from this many items on: the Monte Carlo
costs ~0.2 s here at 10,000 resamples and grows linearly."""
_MIN_RESAMPLES = 99
"""At 99 resamples the smallest Monte Carlo p-value is 0.01."""
_RELATIVE_TOLERANCE = 1e-9
"""|T*| within this share of the statistic's scale of |T| counts as a tie (float sums)."""
CHUNK_CELLS = 1 << 20
"""Coin-matrix cells per chunk (8 MiB of float64)."""


# -- sign flips ----------------------------------------------------------------------------

def sign_flip_test(base: np.ndarray, tuned: np.ndarray, *, resamples: int = 10_000,
                   seed: int = 1234, confidence: float = 0.95) -> PairedResult:
    """Compare the means of continuous per-item scores of two runs on the same items in the
    same order: ``delta = mean(tuned) - mean(base)``, the sign-flip permutation p-value and
    the interval that inverts it (see the module docstring). Methods: ``sign-flip-exact``
    (p-value over all 2^m patterns of the m non-zero differences, m <= 16),
    ``sign-flip-mc`` (``resamples`` random patterns) and, from ``PAIRED_T_MIN_ITEMS``
    items on, ``paired-t``."""
    b = scores("base", base)
    t = scores("tuned", tuned)
    if b.shape != t.shape:
        raise ValueError(f"base and tuned must score the same items: {b.size} vs {t.size}")
    check_sizes(b.size, resamples, confidence)
    d = t - b
    n = d.size
    alpha = 1 - confidence
    spread = float(d.std(ddof=1))
    common = {"base": float(b.mean()), "tuned": float(t.mean()), "delta": float(d.mean()),
              "n": n, "confidence": confidence, "spread": spread}
    if n >= PAIRED_T_MIN_ITEMS:
        low, high = t_interval(d, confidence)
        return PairedResult(**common, ci_low=low, ci_high=high,
                            p_value=float(_paired_t_p_values(d[None])[0]), method="paired-t",
                            testable=True, mde=mde_for("paired-t", n, spread, alpha=alpha))
    # The p-value's Monte Carlo patterns and the interval's are the same draws (same seed,
    # same shape): p < alpha exactly when the interval excludes 0.
    flips = FlipSet.of(d, resamples, seed)
    low, high = flips.interval(alpha)
    exact_p = int(np.count_nonzero(d)) <= EXACT_MAX_ITEMS
    if exact_p:
        p = float(_exact_flip_p(d[d != 0][None])[0])
    else:  # what _flip_p_values computes, from the draws already made
        total = d.sum(keepdims=True)
        extreme = as_extreme(total, total - 2 * flips.flipped_sums[:, None],
                              np.abs(d).sum(keepdims=True))
        p = float((1 + extreme[0]) / (1 + resamples))
    method = "sign-flip-exact" if exact_p else "sign-flip-mc"
    testable = flip_testable(n, resamples, alpha)
    return PairedResult(**common, ci_low=low, ci_high=high, p_value=p, method=method,
                        resamples=None if flips.exact else resamples,
                        resampling=None if flips.exact else "sign-flip", seed=seed,
                        testable=testable,
                        mde=mde_for(method, n, spread, alpha=alpha) if testable else None)


def sign_flip_p_values(base: np.ndarray, tuned: np.ndarray, *, resamples: int = 10_000,
                       seed: int = 1234) -> np.ndarray:
    """Two-sided p-values of many pairs of runs at once (simulations, power studies):
    ``base`` and ``tuned`` of shape ``(S, n)``, one pair of runs per row; row s gets the
    p-value ``sign_flip_test(base[s], tuned[s])`` reports with the same options (the
    Monte Carlo patterns depend only on n, resamples and seed)."""
    b, t = scores("base", base, 2), scores("tuned", tuned, 2)
    if b.shape != t.shape:
        raise ValueError(f"base and tuned must have the same shape: {b.shape} vs {t.shape}")
    check_sizes(b.shape[1], resamples, 0.95)
    d = t - b
    if d.shape[1] >= PAIRED_T_MIN_ITEMS:
        return _paired_t_p_values(d)
    return _flip_p_values(d, resamples, seed)


def flip_testable(n: int, resamples: int, alpha: float) -> bool:
    """Whether a sign-flip or swap test on ``n`` items can reach p < ``alpha`` at all:
    exact up to 16 items (smallest p 2 / 2^n), Monte Carlo beyond (smallest 1 / (B + 1);
    data with at most 16 informative items are tested exactly even then)."""
    if n <= EXACT_MAX_ITEMS:
        return exact_testable(n, alpha)
    return 1 / (resamples + 1) < alpha or exact_testable(EXACT_MAX_ITEMS, alpha)


def _flip_p_values(d: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Sign-flip p-values of the rows of ``d`` (S, n): exact over the rows' non-zero
    differences where there are at most 16, else ``resamples`` patterns drawn once."""
    p = np.ones(d.shape[0])
    nonzero = np.count_nonzero(d, axis=1)
    exact = nonzero <= EXACT_MAX_ITEMS
    if exact.any():
        packed = informative_first(d[exact], d[exact] != 0, int(nonzero[exact].max()))
        # zero-padding doubles every pattern's count for each pad, leaving the shares as
        # they are: all rows share one enumeration
        p[exact] = _exact_flip_p(packed)
    if not exact.all():
        rows = d[~exact]
        sums = random_indicator_sums(rows.T, resamples, np.random.default_rng(seed))
        extreme = as_extreme(rows.sum(axis=1), rows.sum(axis=1) - 2 * sums,
                              np.abs(rows).sum(axis=1))
        p[~exact] = (1 + extreme) / (1 + resamples)
    return p


def _exact_flip_p(d: np.ndarray) -> np.ndarray:
    width = d.shape[1]
    bits = all_indicators(width)
    total = d.sum(axis=1)
    scale = np.abs(d).sum(axis=1)
    out = np.empty(d.shape[0])
    step = max(1, CHUNK_CELLS // bits.shape[0])
    for start in range(0, d.shape[0], step):
        rows = slice(start, start + step)
        with one_blas_thread():
            flipped = bits @ d[rows].T  # (patterns, rows)
        out[rows] = as_extreme(total[rows], total[rows] - 2 * flipped,
                                scale[rows]) / bits.shape[0]
    return out


def as_extreme(observed: np.ndarray, resampled: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per column of ``resampled`` (patterns, S): how many are at least as far from 0 as
    ``observed`` (S,), ties within a relative tolerance of ``scale`` counted."""
    tol = _RELATIVE_TOLERANCE * scale
    return np.count_nonzero(np.abs(resampled) >= np.abs(observed) - tol, axis=0)


def _paired_t_p_values(d: np.ndarray) -> np.ndarray:
    n = d.shape[1]
    mean = d.mean(axis=1)
    se = d.std(axis=1, ddof=1) / math.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * student_t.sf(np.abs(mean) / se, n - 1)
    return np.where(se > 0, p, np.where(mean == 0, 1.0, 0.0))


def t_interval(d: np.ndarray, confidence: float) -> tuple[float, float]:
    mean, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(d.size)
    q = float(student_t.ppf(0.5 + confidence / 2, d.size - 1))
    return mean - q * se, mean + q * se


class FlipSet:
    """Sign patterns of the items of ``d`` -- all 2^n of them, or ``resamples`` random ones
    -- reduced to what the interval needs: for each pattern, the mean of ``d`` over the
    flipped items and over the others (patterns flipping none or all items are counted,
    not kept: they tie with the observed statistic at every shift)."""

    def __init__(self, flipped_sums: np.ndarray, flipped_mean: np.ndarray,
                 kept_mean: np.ndarray, always: int, total: int, exact: bool) -> None:
        self.flipped_sums = flipped_sums
        """Sum of ``d`` over the flipped items, every pattern (the statistic is
        ``sum(d) - 2 flipped_sums``)."""
        self.low = np.minimum(flipped_mean, kept_mean)
        self.high = np.maximum(flipped_mean, kept_mean)
        self.always, self.total, self.exact = always, total, exact

    @classmethod
    def of(cls, d: np.ndarray, resamples: int, seed: int) -> FlipSet:
        n = d.size
        exact = n <= EXACT_MAX_ITEMS
        x = np.column_stack([d, np.ones(n)])
        if exact:
            with one_blas_thread():
                sums = all_indicators(n) @ x
        else:
            sums = random_indicator_sums(x, resamples, np.random.default_rng(seed))
        count = np.rint(sums[:, 1])
        inside = (count > 0) & (count < n)
        flipped_sum, count = sums[inside, 0], count[inside]
        flipped_mean = flipped_sum / count
        kept_mean = (d.sum() - flipped_sum) / (n - count)
        return cls(sums[:, 0], flipped_mean, kept_mean,
                   always=sums.shape[0] - int(inside.sum()), total=sums.shape[0], exact=exact)

    def interval(self, alpha: float) -> tuple[float, float]:
        """Hull of the deltas whose p-value is >= ``alpha``; infinite ends when no delta
        can be rejected."""
        # p(delta) >= alpha  <=>  #patterns whose interval holds delta >= need, with
        # p = count / total (exact) or (1 + count) / (1 + total) (Monte Carlo)
        share = alpha * self.total if self.exact else alpha * (1 + self.total) - 1
        need = math.ceil(share - 1e-9) - self.always
        if need <= 0:
            return -math.inf, math.inf
        return (_first_covered(self.low, self.high, need),
                -_first_covered(-self.high, -self.low, need))


def _first_covered(low: np.ndarray, high: np.ndarray, need: int) -> float:
    """Smallest x covered by at least ``need`` of the closed intervals [low_i, high_i]."""
    values = np.concatenate([low, high])
    steps = np.concatenate([np.ones(low.size, np.int64), -np.ones(high.size, np.int64)])
    order = np.lexsort((-steps, values))  # at a tie, intervals open before others close
    covered = np.cumsum(steps[order])
    return float(values[order][np.argmax(covered >= need)])


def all_indicators(n: int) -> np.ndarray:
    """Every 0/1 row of length n, shape (2^n, n): row j holds the bits of j."""
    codes = np.arange(1 << n, dtype=np.int64)[:, None]
    return ((codes >> np.arange(n)) & 1).astype(np.float64)


def informative_first(x: np.ndarray, informative: np.ndarray, width: int) -> np.ndarray:
    """The first ``width`` items of each row of ``x`` (S, n, ...) after moving the
    informative ones (``informative``: (S, n) bool) to the front, in order."""
    order = np.argsort(~informative, axis=1, kind="stable")
    index = order[:, :width].reshape(order.shape[0], width, *([1] * (x.ndim - 2)))
    return np.take_along_axis(x, index, axis=1)


def random_indicator_sums(x: np.ndarray, resamples: int,
                           rng: np.random.Generator) -> np.ndarray:
    """``W @ x`` for ``resamples`` rows W of independent fair 0/1 coins; W depends only on
    n, ``resamples`` and the generator's state, not on x.

    Converting the coins to floats is most of the cost (10,000 x 100,000 of them: ~0.6 s in
    float64), so integer statistics whose column sums stay below 2^24 (BLEU and chrF
    counts, the column of ones) use float32, which is exact for them."""
    n, k = x.shape
    exact32 = bool(np.all(x == np.rint(x))) and float(np.abs(x).sum(axis=0).max(
        initial=0.0)) < 2.0**24
    values = x.astype(np.float32 if exact32 else np.float64)
    out = np.empty((resamples, k))
    n_bytes = (n + 7) // 8
    chunk = max(1, min(resamples, CHUNK_CELLS // max(n, 1)))
    with one_blas_thread():
        for start in range(0, resamples, chunk):
            rows = min(chunk, resamples - start)
            packed = rng.integers(0, 256, size=(rows, n_bytes), dtype=np.uint8)
            coins = np.unpackbits(packed, axis=1, count=n).astype(values.dtype)
            out[start:start + rows] = coins @ values
    return out


# -- input checks ----------------------------------------------------------------------------

def check_sizes(n: int, resamples: int, confidence: float) -> None:
    if n < 2:
        raise ValueError(f"a paired test needs at least 2 items, got {n}")
    if resamples < _MIN_RESAMPLES:
        raise ValueError(f"resamples must be >= {_MIN_RESAMPLES}, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
