"""Aggregation and confidence intervals: Wilson, Student-t and the seeded bootstrap."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import stats as st

from ftguard.metrics import aggregate
from ftguard.metrics.aggregate import bootstrap_sums, wilson_interval


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 10), (10, 10), (3, 10), (37, 50),
                                      (512, 1000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_equals_scipy(k: int, n: int, confidence: float) -> None:
    expected = st.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    low, high = wilson_interval(k, n, confidence)
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)


def test_binary_mean_metric_uses_wilson() -> None:
    scores = [1.0] * 37 + [0.0] * 13
    v = aggregate("exact_match", scores, None)
    ci = st.binomtest(37, 50).proportion_ci(method="wilson")
    assert (v.value, v.n, v.higher_is_better) == (0.74, 50, True)
    assert (v.ci_low, v.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert v.stderr == pytest.approx(np.std(scores, ddof=1) / math.sqrt(50))  # like lm-eval


@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_continuous_mean_metric_uses_t(confidence: float) -> None:
    x = np.random.default_rng(0).beta(2, 3, size=23)
    v = aggregate("f1", x.tolist(), None, confidence=confidence)
    low, high = st.t.interval(confidence, df=22, loc=x.mean(), scale=st.sem(x))
    assert v.value == pytest.approx(x.mean(), abs=1e-15)
    assert v.stderr == pytest.approx(st.sem(x), rel=1e-12)
    assert (v.ci_low, v.ci_high) == pytest.approx((low, high), abs=1e-12)


def test_binary_metric_with_fractional_scores_falls_back_to_t() -> None:
    v = aggregate("acc", [0.5, 1.0, 0.0, 1.0], None)
    assert v.method == "t" and aggregate("acc", [0.0, 1.0, 1.0], None).method == "wilson"
    low, high = st.t.interval(0.95, df=3, loc=0.625, scale=st.sem([0.5, 1.0, 0.0, 1.0]))
    assert (v.ci_low, v.ci_high) == pytest.approx((max(low, 0.0), min(high, 1.0)))


def test_t_interval_is_clipped_to_the_metric_bounds() -> None:
    v = aggregate("f1", [0.0, 0.2], None)
    low, high = st.t.interval(0.95, df=1, loc=0.1, scale=st.sem([0.0, 0.2]))
    assert low < 0 and high > 1 and (v.ci_low, v.ci_high) == (0.0, 1.0)


def test_degenerate_mean_cases_have_no_nan() -> None:
    one = aggregate("f1", [0.4], None)
    assert (one.value, one.ci_low, one.ci_high, one.stderr, one.n) == (0.4, 0.4, 0.4, None, 1)
    flat = aggregate("rougeL", [0.3] * 5, None)
    assert (flat.ci_low, flat.ci_high, flat.stderr) == pytest.approx((0.3, 0.3, 0.0))
    ones = aggregate("acc", [1.0] * 8, None)
    assert ones.ci_high == 1.0 and 0.6 < ones.ci_low < 0.7 and ones.stderr == 0.0
    zero = aggregate("acc", [0.0], None)
    assert zero.ci_low == 0.0 and 0.7 < zero.ci_high < 0.85


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match="needs per-sample scores"):
        aggregate("f1", None, np.zeros((3, 1)))
    with pytest.raises(ValueError, match="needs per-sample stats"):
        aggregate("bleu", [1.0], None)
    with pytest.raises(ValueError, match="non-empty"):
        aggregate("f1", [], None)
    with pytest.raises(ValueError, match="finite"):
        aggregate("f1", [0.1, math.nan], None)
    with pytest.raises(ValueError, match="shape"):
        aggregate("perplexity", None, np.zeros((0, 4)))
    with pytest.raises(KeyError):
        aggregate("nope", [1.0], None)


def _ppl_stats(rng: np.random.Generator, n: int) -> np.ndarray:
    tokens = rng.integers(5, 50, size=n)
    nll = rng.gamma(2.0, 1.5, size=n) * tokens
    return np.column_stack([nll, tokens, tokens // 2 + 1, tokens * 4])


def test_bootstrap_is_seeded_and_contains_the_estimate() -> None:
    stats = _ppl_stats(np.random.default_rng(0), 300)
    a = aggregate("perplexity", None, stats, seed=7)
    b = aggregate("perplexity", None, stats, seed=7)
    c = aggregate("perplexity", None, stats, seed=8)
    assert a == b
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)
    assert a.value == pytest.approx(math.exp(stats[:, 0].sum() / stats[:, 1].sum()))
    assert a.ci_low < a.value < a.ci_high
    assert a.stderr is not None and a.stderr > 0
    single = aggregate("perplexity", None, stats[:1])
    assert single.ci_low == single.value == single.ci_high and single.stderr is None


def test_bootstrap_sums_are_resampled_counts() -> None:
    n, resamples = 37, 300
    counts = bootstrap_sums(np.eye(n), resamples, seed=3)    # identity stats -> count matrix
    assert counts.shape == (resamples, n)
    assert (counts.sum(axis=1) == n).all()
    assert (counts >= 0).all() and (counts == counts.round()).all()
    assert counts.mean() == pytest.approx(1.0)
    assert counts.var() == pytest.approx(1 - 1 / n, rel=0.05)   # multinomial(n, 1/n) variance
    stats = np.random.default_rng(1).normal(size=(n, 3))
    np.testing.assert_allclose(bootstrap_sums(stats, resamples, seed=3), counts @ stats)


def test_bootstrap_interval_matches_percentiles_of_resampled_values() -> None:
    stats = _ppl_stats(np.random.default_rng(2), 200)
    v = aggregate("bits_per_byte", None, stats, seed=11, resamples=500, confidence=0.9)
    sums = bootstrap_sums(stats, 500, seed=11)
    values = sums[:, 0] / sums[:, 3] / math.log(2)
    low, high = np.quantile(values, [0.05, 0.95])
    assert (v.ci_low, v.ci_high) == pytest.approx((low, high), rel=1e-12)
    assert v.stderr == pytest.approx(values.std(ddof=1), rel=1e-12)


def test_bootstrap_coverage_is_plausible() -> None:
    # precision of a label with true value 0.7: is_pred ~ B(0.5), tp | is_pred ~ B(0.7)
    rng = np.random.default_rng(2024)
    hits, trials = 0, 300
    for i in range(trials):
        is_pred = rng.random(120) < 0.5
        tp = is_pred & (rng.random(120) < 0.7)
        stats = np.column_stack([tp, is_pred, rng.random(120) < 0.5]).astype(float)
        v = aggregate("precision[x]", None, stats, seed=i, resamples=300)
        hits += v.ci_low <= 0.7 <= v.ci_high
    assert 0.89 <= hits / trials <= 0.99


def test_bootstrap_is_fast() -> None:
    stats = np.random.default_rng(0).integers(0, 5, size=(10_000, 10)).astype(float)
    aggregate("bleu", None, stats[:10])                       # warm-up
    start = time.perf_counter()
    v = aggregate("bleu", None, stats, resamples=1000)
    assert time.perf_counter() - start < 1.0
    assert v.n == 10_000 and v.ci_low <= v.value <= v.ci_high
