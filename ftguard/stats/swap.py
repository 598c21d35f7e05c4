"""The paired swap (approximate randomisation) test for corpus metrics -- BLEU, chrF,
perplexity, macro-F1 -- recomputed from summed per-item statistics, and its jackknife
interval. The method, its exactness at small n and its simulated coverage are described with
the sign-flip test in :mod:`ftguard.stats.permutation`, whose coin and interval machinery it
shares.
"""

from __future__ import annotations

import numpy as np

from ftguard.stats.inputs import statistics
from ftguard.stats.permutation import (
    CHUNK_CELLS,
    PAIRED_T_MIN_ITEMS,
    CorpusFn,
    FlipSet,
    all_indicators,
    as_extreme,
    check_sizes,
    flip_testable,
    informative_first,
    random_indicator_sums,
    t_interval,
)
from ftguard.stats.power import EXACT_MAX_ITEMS, mde_for
from ftguard.stats.result import PairedResult


def paired_swap_test(base_stats: np.ndarray, tuned_stats: np.ndarray, corpus_fn: CorpusFn, *,
                     resamples: int = 10_000, seed: int = 1234,
                     confidence: float = 0.95) -> PairedResult:
    """Compare a corpus metric (BLEU, chrF, perplexity, macro-F1) of two runs on the same
    items in the same order.

    ``base_stats`` and ``tuned_stats`` hold per-item sufficient statistics, shape ``(n, k)``;
    ``corpus_fn`` maps summed statistics ``(..., k)`` to metric values ``(...)``. ``delta``
    is the corpus difference tuned - base; the p-value is the paired swap (approximate
    randomisation) test's, exact over the 2^m swaps of the m items whose statistics differ
    when m <= 16 (``swap-exact``), else from ``resamples`` random swaps (``swap-mc``); the
    interval is the sign-flip interval of the jackknife pseudo-values' mean (n > 16:
    Monte Carlo; n >= 20,000: t-interval).
    """
    b, t = paired_rows(base_stats, tuned_stats, resamples, confidence, "stats")
    n = b.shape[0]
    alpha = 1 - confidence
    base_value = _corpus_value(corpus_fn, b.sum(axis=0), "the full data")
    tuned_value = _corpus_value(corpus_fn, t.sum(axis=0), "the full data")
    delta = tuned_value - base_value
    p = float(_swap_p_values(b[None], t[None], corpus_fn, resamples, seed)[0])
    exact_p = int(np.count_nonzero((b != t).any(axis=1))) <= EXACT_MAX_ITEMS

    pseudo = _jackknife_pseudo_values(b, t, corpus_fn, delta)
    spread = float(pseudo.std(ddof=1))
    if n >= PAIRED_T_MIN_ITEMS:
        low, high = t_interval(pseudo, confidence)
    else:
        low, high = FlipSet.of(pseudo, resamples, seed).interval(alpha)
    return swap_result(base_value, tuned_value, p, (low, high), n=n, exact=exact_p,
                       spread=spread, resamples=resamples, seed=seed, confidence=confidence,
                       resampling="swap" if not exact_p or n > EXACT_MAX_ITEMS else None)


def paired_rows(base: np.ndarray, tuned: np.ndarray, resamples: int, confidence: float,
                what: str) -> tuple[np.ndarray, np.ndarray]:
    """Both runs' per-item rows (``base_WHAT``, ``tuned_WHAT``) as float64 ``(n, k)`` of the
    same shape, with sizes a swap test can use; ValueError otherwise."""
    b = statistics(f"base_{what}", base)
    t = statistics(f"tuned_{what}", tuned)
    if b.shape != t.shape:
        raise ValueError(f"base_{what} and tuned_{what} must have the same shape (same items, "
                         f"same statistics): {b.shape} vs {t.shape}")
    check_sizes(b.shape[0], resamples, confidence)
    return b, t


def swap_result(base_value: float, tuned_value: float, p: float,
                interval: tuple[float, float], *, n: int, exact: bool, spread: float,
                resamples: int, seed: int, confidence: float,
                resampling: str | None) -> PairedResult:
    """The PairedResult of a swap test (corpus or set metric): ``swap-exact`` when the p-value
    enumerated every swap; testability and MDE from ``n``, ``resamples`` and ``spread``;
    ``resampling`` names what drew random resamples (None: nothing did, and ``resamples`` is
    not reported)."""
    alpha = 1 - confidence
    method = "swap-exact" if exact else "swap-mc"
    testable = flip_testable(n, resamples, alpha)
    return PairedResult(
        base=base_value, tuned=tuned_value, delta=tuned_value - base_value,
        ci_low=interval[0], ci_high=interval[1], p_value=p, n=n, method=method,
        confidence=confidence, resamples=resamples if resampling else None,
        resampling=resampling, seed=seed, testable=testable, spread=spread,
        mde=mde_for(method, n, spread, alpha=alpha) if testable else None)


def paired_swap_p_values(base_stats: np.ndarray, tuned_stats: np.ndarray,
                         corpus_fn: CorpusFn, *, resamples: int = 10_000,
                         seed: int = 1234) -> np.ndarray:
    """Swap-test p-values of many pairs of runs at once: statistics of shape ``(S, n, k)``,
    one pair of runs per row; row s gets the p-value
    ``paired_swap_test(base_stats[s], tuned_stats[s], corpus_fn)`` reports with the same
    options."""
    b, t = np.asarray(base_stats, np.float64), np.asarray(tuned_stats, np.float64)
    if b.ndim != 3 or b.shape != t.shape or b.shape[2] == 0:
        raise ValueError(f"need statistics of shape (S, n_items, k), the same for both runs; "
                         f"got {b.shape} and {t.shape}")
    if not (np.isfinite(b).all() and np.isfinite(t).all()):
        raise ValueError("statistics must be finite")
    check_sizes(b.shape[1], resamples, 0.95)
    return _swap_p_values(b, t, corpus_fn, resamples, seed)


def _swap_p_values(b: np.ndarray, t: np.ndarray, corpus_fn: CorpusFn, resamples: int,
                   seed: int) -> np.ndarray:
    """Swap-test p-values of the rows of ``b``, ``t`` (S, n, k)."""
    base_total, tuned_total = b.sum(axis=1), t.sum(axis=1)
    base_value = _corpus_values(corpus_fn, base_total, "the full data")
    tuned_value = _corpus_values(corpus_fn, tuned_total, "the full data")
    observed = tuned_value - base_value
    scale = np.abs(observed) + np.abs(base_value) + np.abs(tuned_value)
    # Swapping item i moves (b_i - t_i) from the tuned sums to the base sums. Only items,
    # and statistics, that differ between the runs move (perplexity's token counts never).
    gap = b - t
    varied = np.flatnonzero((gap != 0).any(axis=(0, 1)))
    differs = (gap != 0).any(axis=2)
    informative = differs.sum(axis=1)
    exact = informative <= EXACT_MAX_ITEMS

    def extreme(rows: np.ndarray, moved: np.ndarray) -> np.ndarray:
        """How many swaps of each row (moved: (rows, patterns, len(varied))) are at least
        as extreme as the observed difference."""
        full = np.zeros(moved.shape[:2] + (b.shape[2],))
        full[..., varied] = moved
        swapped = (_corpus_values(corpus_fn, tuned_total[rows, None] + full, "swaps")
                   - _corpus_values(corpus_fn, base_total[rows, None] - full, "swaps"))
        return as_extreme(observed[rows], swapped.T, scale[rows])

    p = np.ones(b.shape[0])
    if exact.any():
        rows = np.flatnonzero(exact)
        width = int(informative[rows].max())
        bits = all_indicators(width)
        packed = informative_first(gap[rows][..., varied], differs[rows], width)
        step = max(1, CHUNK_CELLS // (bits.shape[0] * max(varied.size, 1)))
        for start in range(0, rows.size, step):
            chunk = rows[start:start + step]
            moved = np.einsum("pw,swk->spk", bits, packed[start:start + step])
            p[chunk] = extreme(chunk, moved) / bits.shape[0]
    if not exact.all():
        rows = np.flatnonzero(~exact)
        # coins for all n items (the same draws whichever rows are batched together)
        x = gap[rows][..., varied]  # (rows, n, varied)
        sums = random_indicator_sums(x.transpose(1, 0, 2).reshape(b.shape[1], -1),
                                      resamples, np.random.default_rng(seed))
        moved = sums.reshape(resamples, rows.size, varied.size).transpose(1, 0, 2)
        p[rows] = (1 + extreme(rows, moved)) / (1 + resamples)
    return p


def _jackknife_pseudo_values(b: np.ndarray, t: np.ndarray, corpus_fn: CorpusFn,
                             delta: float) -> np.ndarray:
    """``n D - (n - 1) D_(-i)``, D_(-i) the corpus difference without item i."""
    n = b.shape[0]
    without = (_corpus_values(corpus_fn, t.sum(axis=0) - t, "leave-one-out subsets")
               - _corpus_values(corpus_fn, b.sum(axis=0) - b, "leave-one-out subsets"))
    return n * delta - (n - 1) * without


def _corpus_value(corpus_fn: CorpusFn, sums: np.ndarray, where: str) -> float:
    return float(_corpus_values(corpus_fn, sums, where))


def _corpus_values(corpus_fn: CorpusFn, sums: np.ndarray, where: str) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        values = np.asarray(corpus_fn(sums), dtype=np.float64)
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise ValueError(f"corpus_fn gave a non-finite value (on {bad} of the {where}); it "
                         "must be finite for any sum of per-item statistics")
    return values


# -- the coin matrix -------------------------------------------------------------------------

