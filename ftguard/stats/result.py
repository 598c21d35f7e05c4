"""The outcome of one paired comparison, and the gate decisions read from it.

Deltas are always ``tuned - base`` in the metric's own units (a fraction for accuracy,
0-100 points for BLEU, perplexity units for perplexity). The decisions take the metric's
direction, so "improvement" means higher accuracy but lower perplexity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Method = Literal["mcnemar-exact", "sign-flip-exact", "sign-flip-mc", "paired-t", "swap-exact",
                 "swap-mc", "paired-bootstrap", "corpus-bootstrap"]


@dataclass(frozen=True)
class PairedResult:
    """Base and tuned values of one metric on the same items, their difference, its
    confidence interval and the two-sided p-value of "no difference"."""

    base: float
    """Metric value of the base run."""
    tuned: float
    """Metric value of the tuned run."""
    delta: float
    """``tuned - base``."""
    ci_low: float
    """Lower end of the confidence interval of ``delta``."""
    ci_high: float
    """Upper end of the confidence interval of ``delta``."""
    p_value: float
    """Two-sided p-value of the hypothesis that the runs do not differ."""
    n: int
    """Number of paired items."""
    method: Method
    """``mcnemar-exact`` (0/1 scores); ``sign-flip-exact``, ``sign-flip-mc`` or ``paired-t``
    (mean of continuous per-item scores, :func:`ftguard.stats.sign_flip_test`);
    ``swap-exact`` or ``swap-mc`` (corpus metric from summed per-item statistics,
    :func:`ftguard.stats.paired_swap_test`); ``paired-bootstrap`` and ``corpus-bootstrap``
    (the percentile bootstraps, anti-conservative below a few dozen items)."""
    confidence: float = 0.95
    """Confidence level of ``[ci_low, ci_high]``."""
    wrong_to_right: int | None = None
    """McNemar only: items the base got wrong and the tuned run right."""
    right_to_wrong: int | None = None
    """McNemar only: items the base got right and the tuned run wrong."""
    resamples: int | None = None
    """Bootstrap only: number of resamples."""
    resampling: str | None = None
    """Bootstrap only: ``multinomial`` or ``double-or-nothing`` (see
    :mod:`ftguard.stats.resample`)."""
    seed: int | None = None
    """Resampling methods only: the seed; the same seed and data give the same result."""
    testable: bool = True
    """Whether any outcome at this ``n`` could reach ``p < 1 - confidence``: a function of
    ``n`` (and of ``resamples``), not of the data. Exact McNemar, sign-flip and swap tests
    cannot go below p = 2 / 2^n, so they need n >= 6 at the 5% level. A row that is not
    testable can never be "regressed", whatever the runs did."""
    spread: float | None = None
    """What :attr:`mde` is computed from: the share of discordant items assumed
    (``max(observed, DEFAULT_DISCORDANCE)``) for McNemar; the standard deviation of the
    per-item differences for sign-flip and paired-t; that of the jackknife pseudo-values
    for swap tests of corpus metrics, sqrt(n) times the bootstrap standard deviation of the
    difference for swap tests of set metrics (``ece``). ``None`` where the result was built without it (the bootstraps)."""
    mde: float | None = None
    """Minimum detectable change at this ``n``, in the metric's units: the change the test
    detects with 80% power at level ``1 - confidence`` (see
    :func:`ftguard.stats.items_needed` for the n a given change needs). ``None`` when the
    row is not testable or no change is detectable with 80% power at this ``n``."""


def _improvement(result: PairedResult, higher_is_better: bool) -> tuple[float, float, float]:
    """``delta`` and its interval turned so that positive means better."""
    if higher_is_better:
        return result.delta, result.ci_low, result.ci_high
    return -result.delta, -result.ci_high, -result.ci_low


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def non_inferior(result: PairedResult, margin: float, higher_is_better: bool) -> bool:
    """True unless the tuned run may be worse than the base by more than ``margin``.

    ``margin`` (>= 0, in the metric's units) is the loss we accept. The check fails only
    when the lower end of the confidence interval of the improvement (``delta`` for
    higher-is-better metrics, ``-delta`` otherwise) lies below ``-margin``: a run that is
    merely not shown to be better still passes.
    """
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")
    _, low, _ = _improvement(result, higher_is_better)
    return low >= -margin


def superior(result: PairedResult, alpha: float, higher_is_better: bool) -> bool:
    """True when the tuned run is better and the two-sided p-value is below ``alpha``."""
    _check_alpha(alpha)
    gain, _, _ = _improvement(result, higher_is_better)
    return gain > 0 and result.p_value < alpha


def regressed(result: PairedResult, alpha: float, higher_is_better: bool) -> bool:
    """True when the tuned run is worse and the two-sided p-value is below ``alpha``."""
    _check_alpha(alpha)
    gain, _, _ = _improvement(result, higher_is_better)
    return gain < 0 and result.p_value < alpha


def one_item(base: float, tuned: float) -> PairedResult:
    """The comparison of a metric on a single paired item: its change, an unbounded interval,
    p = 1 and not testable (no paired test can say anything about one item)."""
    return PairedResult(base=base, tuned=tuned, delta=tuned - base, ci_low=-math.inf,
                        ci_high=math.inf, p_value=1.0, n=1, method="sign-flip-exact",
                        testable=False)
