"""Power analysis for paired comparisons: how large a change a suite can detect.

For a binary metric (acc, exact match) compared on the same n items, only the *discordant*
items carry information: those the candidate gets right and the base wrong (rate p01) or
the reverse (p10). The paired test is McNemar's; Connor (1987) gives its sample size as

    n = (z_{1-a/2} * sqrt(psi) + z_{1-b} * sqrt(psi - delta^2))^2 / delta^2,

with psi = p01 + p10 the discordance rate and delta = p01 - p10 the change in accuracy.
:func:`mde_paired_binary_approx` solves it for delta; :func:`mde_paired_binary` uses the
exact power of the exact test instead, which is what ftguard's gate runs. The answer depends on psi, which is a
property of the pair of models, not of the suite: a light fine-tune changes few items
(small psi, small detectable change), an unrelated model many. ftguard's default assumption
is psi = 0.20 (one item in five changes correctness); measure yours from a real comparison.

Continuous means and corpus metrics (:func:`mde_shift`) use the standard deviation of the
per-item differences (or of jackknife pseudo-values) with Student quantiles. Every exact
test of "no difference" on n items bottoms out at p = 2 / 2^n, so below 6 items at the 5%
level nothing is detectable (:func:`exact_testable`, :func:`smallest_testable_n`); the MDE
functions then return ``None``, never a cap, and :func:`items_needed_for` says how many
items a given change needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.stats import binom, norm
from scipy.stats import t as student_t

from ftguard.stats.result import PairedResult

DEFAULT_DISCORDANCE = 0.20
"""Assumed share of items whose correctness differs between base and candidate."""
_BOOTSTRAPS = ("paired-bootstrap", "corpus-bootstrap")
EXACT_MAX_ITEMS = 16
"""The sign-flip and swap tests (:mod:`ftguard.stats.permutation`) enumerate all 2^m coin
patterns up to this many informative items (65,536 patterns): exact, and no slower than
10,000 Monte Carlo draws."""
_NEGLIGIBLE = 1e-13
"""Binomial mass of discordant counts left out of :func:`power_paired_binary` (each tail)."""


def _z(alpha: float, power: float) -> tuple[float, float]:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("alpha and power must be in (0, 1)")
    return float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))


def power_paired_binary(n: int, discordance: float, delta: float, *,
                        alpha: float = 0.05) -> float:
    """Exact power of the two-sided exact McNemar test on ``n`` paired items when a share
    ``discordance`` of items changes correctness and the metric changes by ``delta``.

    The number of discordant items is Binomial(n, psi); given d of them, the number that
    improved is Binomial(d, (psi + delta) / (2 psi)), and the test rejects when it falls in
    either tail of Binomial(d, 1/2) with mass at most alpha / 2 each. Only the d with
    Binomial(n, psi) mass above 1e-13 are summed (O(sqrt n) terms instead of n + 1: the
    MDE of 100,000 items took 18 s, now milliseconds); the power is off by < 1e-12.
    """
    if not 0 <= abs(delta) < discordance <= 1:
        raise ValueError("need |delta| < discordance <= 1")
    d, weight, k_low = _mcnemar_frame(n, discordance, alpha)
    q = (discordance + delta) / (2 * discordance)
    reject = binom.cdf(k_low, d, q) + binom.sf(d - k_low - 1, d, q)
    return float(np.sum(weight * np.where(k_low < 0, 0.0, reject)))


@lru_cache(maxsize=64)
def _mcnemar_frame(n: int, discordance: float,
                   alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The discordant counts d worth summing, their Binomial(n, psi) mass and the exact
    test's lower critical value at each (cached: the MDE's root search asks a dozen)."""
    lo = int(binom.ppf(_NEGLIGIBLE, n, discordance))
    hi = int(binom.isf(_NEGLIGIBLE, n, discordance))
    d = np.arange(max(lo - 1, 0), min(hi + 1, n) + 1)
    # largest k with P(B <= k | d, 1/2) <= alpha/2 (-1 when there is none)
    k_low = binom.ppf(alpha / 2, d, 0.5).astype(int)
    k_low -= binom.cdf(k_low, d, 0.5) > alpha / 2
    return d, binom.pmf(d, n, discordance), k_low


@lru_cache(maxsize=4096)  # compare asks once per row; simulations ask the same n and share
def mde_paired_binary(n: int, discordance: float = DEFAULT_DISCORDANCE, *, alpha: float = 0.05,
                      power: float = 0.80) -> float | None:
    """Smallest change in a 0/1 metric (as a fraction) that the exact two-sided McNemar test
    on ``n`` paired items detects with probability ``power`` at level ``alpha``; ``None``
    when no change is: even the largest change the assumed discordance allows (every
    discordant item going one way) is detected less often than ``power`` -- always so
    below :func:`smallest_testable_n`, and at 20% discordance up to n = 38
    (:func:`smallest_detectable_n`). It used to return that largest change, 20 points at
    the default discordance, as if it were a figure.

    The root of :func:`power_paired_binary` minus ``power`` (Brent's method); Connor's
    normal approximation (:func:`mde_paired_binary_approx`) is a few percent of power
    optimistic for the exact test.
    """
    if n < 1 or not 0 < discordance <= 1:
        raise ValueError("need n >= 1 and 0 < discordance <= 1")
    _z(alpha, power)
    high = discordance * (1 - 1e-9)
    if not exact_testable(n, alpha) or power_paired_binary(n, discordance, high,
                                                           alpha=alpha) < power:
        return None
    # the power rises continuously from the test's size (< alpha < power) at delta = 0
    return float(brentq(lambda d: power_paired_binary(n, discordance, d, alpha=alpha) - power,
                        0.0, high, xtol=1e-10))


def smallest_detectable_n(discordance: float = DEFAULT_DISCORDANCE, *, alpha: float = 0.05,
                          power: float = 0.80) -> int:
    """Smallest n at which :func:`mde_paired_binary` gives a figure: from it on, some change
    of a 0/1 metric is detected with probability ``power`` (the largest one the
    discordance allows, all discordant items going one way)."""
    if not 0 < discordance <= 1:
        raise ValueError("need 0 < discordance <= 1")
    _z(alpha, power)
    return _first_n(lambda n: mde_paired_binary(n, discordance, alpha=alpha,
                                                power=power) is not None,
                    smallest_testable_n(alpha=alpha))


def items_needed_binary(effect: float, discordance: float = DEFAULT_DISCORDANCE, *,
                        alpha: float = 0.05, power: float = 0.80) -> int | None:
    """Smallest n at which the exact McNemar test detects a change of ``effect`` (a fraction,
    > 0) with probability ``power``, given the share ``discordance`` of items that change
    correctness; ``None`` when ``effect >= discordance`` (accuracy cannot move by more than
    the share of items that change). The exact test's power saw-tooths in n by a point or
    so; this is the first n of the bisection's bracket, stepped down while the power holds.
    """
    if not 0 < discordance <= 1:
        raise ValueError("need 0 < discordance <= 1")
    if not effect > 0:
        raise ValueError(f"effect must be > 0, got {effect}")
    _z(alpha, power)
    if effect >= discordance:
        return None
    return _first_n(lambda n: power_paired_binary(n, discordance, effect, alpha=alpha) >= power,
                    smallest_testable_n(alpha=alpha))


def _first_n(enough: Callable[[int], bool], start: int) -> int:
    """Smallest n >= ``start`` where ``enough(n)`` holds, assuming it holds from some n on
    (doubling, bisection, then stepping down over small non-monotone dips)."""
    if enough(start):
        return start
    low, high = start, 2 * start
    while not enough(high):
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if not enough(mid) else (low, mid)
    while high - 1 > start and enough(high - 1):
        high -= 1
    return high


def mde_paired_binary_approx(n: int, discordance: float = DEFAULT_DISCORDANCE, *,
                             alpha: float = 0.05, power: float = 0.80) -> float:
    """Connor's (1987) normal approximation of :func:`mde_paired_binary` (closed form)."""
    za, zb = _z(alpha, power)

    def needed(delta: float) -> float:
        return (za * math.sqrt(discordance) + zb * math.sqrt(discordance - delta**2)) ** 2 / delta**2

    low, high = 1e-9, math.sqrt(discordance) * (1 - 1e-12)
    if needed(high) > n:
        return high
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if needed(mid) > n else (low, mid)
    return high


def mde_paired_mean(n: int, sd_difference: float, *, alpha: float = 0.05,
                    power: float = 0.80) -> float:
    """Smallest change in the mean of a continuous per-item metric detectable by a paired
    test, given the standard deviation of the per-item differences (normal approximation)."""
    if n < 2 or sd_difference < 0:
        raise ValueError("need n >= 2 and sd_difference >= 0")
    za, zb = _z(alpha, power)
    return (za + zb) * sd_difference / math.sqrt(n)


def exact_testable(n: int, alpha: float) -> bool:
    """Whether an exact two-sided test of a symmetric null on ``n`` items (exact McNemar,
    sign-flip or swap permutation test) can reach p < ``alpha`` at all: its smallest
    p-value is 2 / 2^n, when every item moves the same way (n >= 6 at alpha 0.05)."""
    return 2.0 * 0.5**n < alpha


def smallest_testable_n(method: str = "mcnemar-exact", alpha: float = 0.05) -> int:
    """Smallest n at which a test of ``method`` can reach p < ``alpha`` (6 at 0.05, 8 at
    0.01). The same for every method ftguard's compare uses: up to 16 items the sign-flip
    and swap tests are exact, like McNemar's; ``paired-t`` runs only on 20,000+ items.
    The percentile bootstraps (``paired-bootstrap``, ``corpus-bootstrap``) "reject" from 2
    items on, which is why compare no longer uses them."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if method in _BOOTSTRAPS:
        return 2
    n = 1
    while not exact_testable(n, alpha):
        n += 1
    return n


def mde_shift(n: int, spread: float, *, alpha: float = 0.05,
              power: float = 0.80) -> float | None:
    """Smallest shift of a mean the sign-flip / swap / paired-t test on ``n`` items detects
    with probability ``power``, given the standard deviation ``spread`` of the per-item
    differences (or jackknife pseudo-values); ``None`` below :func:`smallest_testable_n`.

    ``(t_{1 - a/2, n-1} + t_{power, n-1}) spread / sqrt(n)``: the normal approximation with
    Student quantiles, and up to 16 items (where the tests are exact) ``a`` the largest
    level the exact test can attain below ``alpha`` (a multiple of 2 / 2^n; 1/32 at n = 6).
    With z quantiles and ``a = alpha`` the simulated power of the sign-flip test at this
    change was 45% at n = 6, 73% at n = 10 and 77% at n = 20 (normal differences); see
    ``tests/test_stats_small_n.py`` for this one's.
    """
    if not spread >= 0 or not math.isfinite(spread):
        raise ValueError(f"spread must be a finite number >= 0, got {spread}")
    _z(alpha, power)
    if not exact_testable(n, alpha):
        return None
    level = alpha
    if n <= EXACT_MAX_ITEMS:
        step = 2.0 * 0.5**n
        level = (math.ceil(alpha / step - 1e-9) - 1) * step
    df = n - 1
    return float(student_t.ppf(1 - level / 2, df) + student_t.ppf(power, df)) * spread / math.sqrt(n)


def mde_for(method: str, n: int, spread: float | None, *, alpha: float = 0.05,
            power: float = 0.80) -> float | None:
    """The MDE a :class:`PairedResult` of ``method`` reports: exact McNemar power at
    discordance ``spread`` for ``mcnemar-exact``, :func:`mde_shift` otherwise; ``None``
    without a spread or when nothing is detectable."""
    if spread is None:
        return None
    if method == "mcnemar-exact":
        return mde_paired_binary(n, spread, alpha=alpha, power=power) if spread > 0 else None
    return mde_shift(n, spread, alpha=alpha, power=power)


def items_needed_for(method: str, spread: float | None, effect: float, *, alpha: float = 0.05,
                     power: float = 0.80) -> int | None:
    """Smallest n at which a test of ``method`` detects a change of ``effect`` (metric units,
    > 0) with probability ``power`` at level ``alpha``, given ``spread`` as in
    :attr:`PairedResult.spread`, and never below :func:`smallest_testable_n`.

    - ``mcnemar-exact``: :func:`items_needed_binary` at discordance ``spread``; ``None`` when
      ``effect >= spread`` (accuracy cannot move by more than the share of items that
      change; measure a larger discordance or assume one).
    - every other method: the smallest n with ``mde_shift(n, spread) <= effect`` (about
      ``((z_{1-alpha/2} + z_power) spread / effect)^2`` plus a few); a spread of 0 needs
      only the smallest testable n.
    - ``None`` without a spread (rows built without one, e.g. by the bootstraps).
    """
    if not effect > 0 or not math.isfinite(effect):
        raise ValueError(f"effect must be a finite number > 0, got {effect}")
    za, zb = _z(alpha, power)
    if spread is None:
        return None
    floor = smallest_testable_n(method, alpha)
    if method == "mcnemar-exact":
        if not spread > 0:
            return None
        return items_needed_binary(effect, spread, alpha=alpha, power=power)
    n = max(floor, math.ceil(((za + zb) * spread / effect) ** 2 - 1e-9))  # z: a lower bound
    while (mde := mde_shift(n, spread, alpha=alpha, power=power)) is None or mde > effect:
        n += 1
    return n


def items_needed(result: PairedResult, effect: float, *, alpha: float = 0.05,
                 power: float = 0.80) -> int | None:
    """Smallest n at which ``result``'s test would detect a change of ``effect`` (metric
    units, > 0) with probability ``power``, given its spread (see
    :func:`items_needed_for`)."""
    return items_needed_for(result.method, result.spread, effect, alpha=alpha, power=power)


@dataclass(frozen=True)
class PowerRow:
    """Detectable change of one task (or of a suite in aggregate)."""

    suite: str
    task: str
    metric: str
    n: int
    mde: float | None
    """Minimum detectable change, as a fraction (0.05 = 5 points); ``None`` when no change
    is detectable with the requested power on ``n`` items."""
    detectable_from: int | None = None
    """When ``mde`` is ``None``: the smallest n at which some change would be."""
