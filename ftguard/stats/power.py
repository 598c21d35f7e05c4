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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom, norm

DEFAULT_DISCORDANCE = 0.20
"""Assumed share of items whose correctness differs between base and candidate."""


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
    either tail of Binomial(d, 1/2) with mass at most alpha / 2 each.
    """
    if not 0 <= abs(delta) < discordance <= 1:
        raise ValueError("need |delta| < discordance <= 1")
    d = np.arange(n + 1)
    # largest k with P(B <= k | d, 1/2) <= alpha/2 (-1 when there is none)
    k_low = binom.ppf(alpha / 2, d, 0.5).astype(int)
    k_low -= binom.cdf(k_low, d, 0.5) > alpha / 2
    q = (discordance + delta) / (2 * discordance)
    reject = binom.cdf(k_low, d, q) + binom.sf(d - k_low - 1, d, q)
    reject[k_low < 0] = 0.0
    return float(np.sum(binom.pmf(d, n, discordance) * reject))


def mde_paired_binary(n: int, discordance: float = DEFAULT_DISCORDANCE, *, alpha: float = 0.05,
                      power: float = 0.80) -> float:
    """Smallest change in a 0/1 metric (as a fraction) that the exact two-sided McNemar test
    on ``n`` paired items detects with probability ``power`` at level ``alpha``.

    Found by bisection on :func:`power_paired_binary`, starting from Connor's normal
    approximation (which is optimistic for the exact test by a few percent of power).
    """
    if n < 1 or not 0 < discordance <= 1:
        raise ValueError("need n >= 1 and 0 < discordance <= 1")
    _z(alpha, power)
    low, high = 0.0, discordance * (1 - 1e-9)
    if power_paired_binary(n, discordance, high, alpha=alpha) < power:
        return high  # even the largest possible change is not detectable this often
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if power_paired_binary(n, discordance, mid,
                                                       alpha=alpha) < power else (low, mid)
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


@dataclass(frozen=True)
class PowerRow:
    """Detectable change of one task (or of a suite in aggregate)."""

    suite: str
    task: str
    metric: str
    n: int
    mde: float
    """Minimum detectable change, as a fraction (0.05 = 5 points)."""
