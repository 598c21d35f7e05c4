"""Paired statistics: exact McNemar + Tango interval, paired and corpus bootstrap, Holm/BH,
gate decisions -- checked against reference computations and by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar
from scipy.stats import binomtest, false_discovery_control, norm

from ftguard.metrics.aggregate import bootstrap_sums
from ftguard.metrics.perplexity import perplexity_from_stats
from ftguard.stats import (
    PairedResult,
    benjamini_hochberg,
    holm,
    mcnemar_exact,
    non_inferior,
    paired_bootstrap,
    paired_corpus_bootstrap,
    power_paired_binary,
    regressed,
    resampled_sums,
    superior,
    tango_interval,
)
from ftguard.stats.resample import choose_scheme

Z95 = float(norm.ppf(0.975))


def flips(right_to_wrong: int, wrong_to_right: int, both_right: int, both_wrong: int,
          seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """0/1 scores of two runs with the given 2x2 table, items in shuffled order."""
    base = np.repeat([1, 0, 1, 0], [right_to_wrong, wrong_to_right, both_right, both_wrong])
    tuned = np.repeat([0, 1, 1, 0], [right_to_wrong, wrong_to_right, both_right, both_wrong])
    order = np.random.default_rng(seed).permutation(base.size)
    return base[order], tuned[order]


# --- McNemar -----------------------------------------------------------------------------

@pytest.mark.parametrize(("r2w", "w2r", "both_right", "both_wrong"), [
    (0, 0, 30, 20),      # no discordant items
    (40, 10, 600, 350),  # a regression
    (10, 40, 600, 350),  # an improvement
    (3, 4, 50, 43),      # noise
    (0, 12, 10, 8),      # all discordant items one way
    (12, 0, 0, 0),       # every item discordant, all one way
    (1, 0, 19, 0),
])
def test_mcnemar_p_value_is_the_exact_binomial_test(r2w: int, w2r: int, both_right: int,
                                                    both_wrong: int) -> None:
    base, tuned = flips(r2w, w2r, both_right, both_wrong)
    result = mcnemar_exact(base, tuned)
    expected = binomtest(r2w, r2w + w2r, 0.5).pvalue if r2w + w2r else 1.0
    assert result.p_value == pytest.approx(expected, rel=1e-12)
    assert (result.right_to_wrong, result.wrong_to_right, result.n) == (r2w, w2r, base.size)
    assert result.delta == pytest.approx(tuned.mean() - base.mean(), abs=1e-15)
    assert result.ci_low <= result.delta <= result.ci_high
    assert result.ci_high - result.ci_low > 0.01 and result.method == "mcnemar-exact"


def test_mcnemar_numbers_for_a_typical_regression() -> None:
    result = mcnemar_exact(*flips(40, 10, 600, 350))
    assert (result.base, result.tuned, result.delta) == pytest.approx((0.64, 0.61, -0.03))
    assert result.p_value == pytest.approx(2.386e-5, rel=1e-3)
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.04503, -0.01685), abs=1e-5)


def _brute_force_tango(x: int, y: int, n: int) -> tuple[float, float]:
    """Tango's interval from its definition: the restricted MLE by numerical optimisation
    of the multinomial likelihood, the score statistic, its roots by bisection."""
    def statistic(d: float) -> float:
        lo, hi = max(0.0, -d) + 1e-13, (1 - d) / 2 - 1e-13

        def nll(q: float) -> float:
            cells = [(x, q + d), (y, q), (n - x - y, 1 - 2 * q - d)]
            return -sum(k * math.log(p) for k, p in cells if k)
        q = minimize_scalar(nll, bounds=(lo, hi), method="bounded",
                            options={"xatol": 1e-13}).x
        return (x - y - n * d) / math.sqrt(n * (2 * q + d * (1 - d)))
    est = (x - y) / n
    low = brentq(lambda d: statistic(d) - Z95, -1 + 1e-9, est - 1e-12)
    high = brentq(lambda d: statistic(d) + Z95, est + 1e-12, 1 - 1e-9)
    return low, high


@pytest.mark.parametrize(("x", "y", "n"), [(1, 7, 21), (6, 16, 161), (40, 20, 160),
                                           (0, 5, 50), (3, 0, 10), (25, 25, 400)])
def test_tango_interval_matches_its_definition(x: int, y: int, n: int) -> None:
    assert tango_interval(x, y, n) == pytest.approx(_brute_force_tango(x, y, n), abs=2e-6)


@pytest.mark.parametrize("n", [20, 100, 1000])
def test_tango_interval_keeps_width_without_discordant_items(n: int) -> None:
    # With x = y = 0 the score equation solves to |d| = z^2 / (n + z^2): at n = 100, +-3.7
    # points -- 100 agreeing items do not prove the runs agree on every item.
    half = Z95**2 / (n + Z95**2)
    assert tango_interval(0, 0, n) == pytest.approx((-half, half), rel=1e-9)
    result = mcnemar_exact(np.ones(n), np.ones(n))
    assert (result.delta, result.p_value) == (0.0, 1.0)
    assert result.ci_low == pytest.approx(-half) and result.ci_high == pytest.approx(half)


def test_tango_interval_at_the_edges() -> None:
    low, high = tango_interval(10, 0, 10)  # every item improved
    assert high == 1.0 and 0.4 < low < 0.5
    assert tango_interval(0, 10, 10) == pytest.approx((-1.0, -low))


def _latent_items(n: int, drop: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-item success probabilities of base and tuned, drawn once: a shared latent
    difficulty z makes them correlated, the tuned run is shifted on the probit scale so
    its expected accuracy is exactly ``drop`` lower."""
    z = np.random.default_rng(seed).normal(size=n)
    p_base = norm.cdf(0.5 + 2.0 * z)
    if drop == 0:
        return p_base, p_base
    shift = brentq(lambda s: norm.cdf(0.5 - s + 2.0 * z).mean() - p_base.mean() + drop, 0, 3)
    return p_base, norm.cdf(0.5 - shift + 2.0 * z)


def test_mcnemar_false_alarm_rate_without_a_true_difference() -> None:
    # Each item has its own success probability (mean 0.61, many near 0 or 1); both runs
    # draw independently from the same probabilities: no true difference. n = 500, ~101
    # discordant items per pair of runs. Simulated: 4.4% false alarms, 95.0% coverage.
    p, _ = _latent_items(500, 0.0, seed=11)
    rng = np.random.default_rng(12)
    results = [mcnemar_exact(rng.random(500) < p, rng.random(500) < p) for _ in range(1000)]
    false_alarms = np.mean([r.p_value < 0.05 for r in results])
    covered = np.mean([r.ci_low <= 0 <= r.ci_high for r in results])
    assert 0.02 <= false_alarms <= 0.065  # the exact test holds its level (and does reject)
    assert 0.93 <= covered <= 0.97  # Tango's interval covers the true difference 0


def test_mcnemar_detects_a_five_point_drop_80_percent_of_the_time() -> None:
    # 1,000 items; probit latent model with a shared per-item difficulty: correctness of
    # base and tuned correlates at 0.58 and 21% of items are discordant (psi = 0.208; the
    # exact power formula predicts 93% power, the simulation gives 91.8%); tuned is exactly
    # 5 points worse in expectation (0.610 -> 0.560).
    p_base, p_tuned = _latent_items(1000, 0.05, seed=21)
    discordance = float(np.mean(p_base * (1 - p_tuned) + p_tuned * (1 - p_base)))
    assert 0.20 < discordance < 0.25
    assert power_paired_binary(1000, discordance, -0.05) > 0.85
    rng = np.random.default_rng(22)
    results = [mcnemar_exact(rng.random(1000) < p_base, rng.random(1000) < p_tuned)
               for _ in range(500)]
    fired = np.mean([regressed(r, 0.05, higher_is_better=True) for r in results])
    assert fired >= 0.80
    covered = np.mean([r.ci_low <= -0.05 <= r.ci_high for r in results])
    assert 0.92 <= covered <= 0.98


def test_unpaired_z_test_misses_the_regression_mcnemar_finds() -> None:
    # 1,000 items, base 70% right; the fine-tune breaks 40 items and fixes 10 (-3 points).
    base, tuned = flips(40, 10, 660, 290)

    # lm-eval scripts/model_comparator.py: runs treated as independent samples.
    def stderr(x: np.ndarray) -> float:
        return float(np.std(x, ddof=1) / math.sqrt(x.size))  # lm-eval's acc_stderr
    z = (tuned.mean() - base.mean()) / math.sqrt(stderr(base) ** 2 + stderr(tuned) ** 2)
    unpaired_p = 2 * norm.sf(abs(z))
    assert unpaired_p > 0.05  # z = -1.44, p = 0.15: "no significant difference"

    paired = mcnemar_exact(base, tuned)
    assert paired.p_value < 0.05 and paired.p_value == pytest.approx(2.386e-5, rel=1e-3)
    assert regressed(paired, 0.05, higher_is_better=True)
    # the paired bootstrap on the same 0/1 scores agrees
    assert paired_bootstrap(base, tuned, resamples=2000).p_value < 0.001


# --- paired bootstrap --------------------------------------------------------------------

def _continuous_runs(rng: np.random.Generator, n: int, delta: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """F1-like per-item scores: a shared item quality (skewed, many items near 0), base
    noise, and a skewed (exponential) per-item change with mean ``delta``."""
    quality = rng.beta(0.5, 1.2, n)
    base = quality + rng.normal(0, 0.1, n)
    tuned = quality + delta + rng.exponential(0.15, n) - 0.15
    return base, tuned


@pytest.mark.parametrize(("scheme", "n", "resamples"), [("multinomial", 200, 2000),
                                                        ("double-or-nothing", 1000, 1000)])
def test_paired_bootstrap_interval_covers_the_true_delta(scheme: str, n: int,
                                                         resamples: int) -> None:
    rng = np.random.default_rng(31)
    hits = 0
    for seed in range(400):
        base, tuned = _continuous_runs(rng, n, 0.03)
        r = paired_bootstrap(base, tuned, resamples=resamples, seed=seed, scheme=scheme)
        assert r.resampling == scheme
        hits += r.ci_low <= 0.03 <= r.ci_high
    assert 0.92 <= hits / 400 <= 0.98


def _perplexity_stats(nll: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """``[nll, tokens, words, bytes]`` per document, as ftguard's perplexity tasks keep."""
    return np.column_stack([nll, tokens, 0.75 * tokens, 4 * tokens])


def test_corpus_bootstrap_interval_covers_the_true_perplexity_change() -> None:
    # Documents of very different lengths; per-token NLL rate 2.0 for the base, 1.95 for
    # the tuned model on average, item difficulty shared: true perplexity change is
    # exp(1.95) - exp(2.0) = -0.360.
    truth = math.exp(1.95) - math.exp(2.0)
    rng = np.random.default_rng(41)
    n, hits = 200, 0
    for seed in range(400):
        tokens = 5 + rng.poisson(rng.lognormal(4, 0.8, n)).astype(float)
        rate = 2.0 + 0.5 * rng.normal(size=n)
        noise = 0.8 * np.sqrt(tokens) * rng.normal(size=(2, n))
        base = _perplexity_stats(tokens * rate + noise[0], tokens)
        tuned = _perplexity_stats(tokens * (rate - 0.05) + noise[1], tokens)
        r = paired_corpus_bootstrap(base, tuned, perplexity_from_stats, resamples=2000,
                                    seed=seed)
        hits += r.ci_low <= truth <= r.ci_high
    assert r.method == "corpus-bootstrap" and r.base == pytest.approx(
        perplexity_from_stats(base.sum(axis=0)))
    assert 0.90 <= hits / 400 <= 0.98


def test_p_value_is_below_alpha_exactly_when_the_interval_excludes_zero() -> None:
    rng = np.random.default_rng(51)
    decisions = []
    for seed in range(150):
        base, tuned = _continuous_runs(rng, 60, 0.03)
        r = paired_bootstrap(base, tuned, resamples=500, seed=seed)
        excludes = r.ci_low > 0 or r.ci_high < 0
        assert (r.p_value < 0.05) == excludes
        assert 1 / 500 <= r.p_value <= 1
        decisions.append(excludes)
    assert 0.2 < np.mean(decisions) < 0.8  # the cases straddle the boundary


def test_both_runs_are_resampled_with_the_same_items() -> None:
    rng = np.random.default_rng(61)
    stats = rng.random((300, 4)) + 0.5
    same = paired_corpus_bootstrap(stats, stats.copy(), perplexity_from_stats, resamples=500)
    assert (same.delta, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)

    # a mean is the corpus metric sum(score) / sum(1): both bootstraps see the same resamples
    base, tuned = _continuous_runs(rng, 300, 0.02)
    direct = paired_bootstrap(base, tuned, resamples=1000, seed=7)
    as_corpus = paired_corpus_bootstrap(
        np.column_stack([base, np.ones(300)]), np.column_stack([tuned, np.ones(300)]),
        lambda s: s[..., 0] / s[..., 1], resamples=1000, seed=7)
    assert (as_corpus.ci_low, as_corpus.ci_high) == pytest.approx(
        (direct.ci_low, direct.ci_high), abs=1e-12)
    assert as_corpus.p_value == direct.p_value

    # exact resampling draws the same resamples as the single-run aggregate
    sums, used = resampled_sums(stats, 300, seed=5, scheme="multinomial")
    assert used == "multinomial"
    np.testing.assert_allclose(sums, bootstrap_sums(stats, 300, 5), rtol=1e-12)


def test_pairing_narrows_the_interval() -> None:
    rng = np.random.default_rng(71)
    base, tuned = _continuous_runs(rng, 500, 0.02)
    r = paired_bootstrap(base, tuned, resamples=2000)
    unpaired_half_width = Z95 * math.sqrt(base.var(ddof=1) / 500 + tuned.var(ddof=1) / 500)
    assert (r.ci_high - r.ci_low) / 2 < 0.5 * unpaired_half_width


def test_double_or_nothing_has_the_multinomial_spread() -> None:
    rng = np.random.default_rng(81)
    x = rng.lognormal(0, 1, (5000, 1))
    expected_sd = x[:, 0].std() / math.sqrt(5000)
    for scheme in ("multinomial", "double-or-nothing"):
        sums, used = resampled_sums(x, 2000, seed=3, scheme=scheme)
        means = sums[:, 0] / 5000
        assert used == scheme
        assert means.mean() == pytest.approx(x.mean(), abs=0.2 * expected_sd)
        assert means.std() == pytest.approx(expected_sd, rel=0.06)
    assert choose_scheme("auto", 5000, 10_000) == "multinomial"  # 5e7 cells: ~0.3 s
    assert choose_scheme("auto", 5000, 10_001) == "double-or-nothing"
    assert choose_scheme("auto", 900, 10**6) == "multinomial"  # too few items


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    base, tuned = _continuous_runs(np.random.default_rng(91), 2000, 0.01)
    for scheme in ("multinomial", "double-or-nothing"):
        first = paired_bootstrap(base, tuned, resamples=500, seed=1, scheme=scheme)
        assert paired_bootstrap(base, tuned, resamples=500, seed=1, scheme=scheme) == first
        assert paired_bootstrap(base, tuned, resamples=500, seed=2, scheme=scheme) != first


def test_bad_input_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="0/1 scores"):
        mcnemar_exact(np.array([0, 1, 2]), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="same length"):
        mcnemar_exact(np.array([0, 1]), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap(np.zeros(5), np.zeros(6))
    with pytest.raises(ValueError, match="resamples must be >= 100"):
        paired_bootstrap(np.zeros(5), np.zeros(5), resamples=10)
    with pytest.raises(ValueError, match="at least 2 items"):
        paired_bootstrap(np.zeros(1), np.zeros(1))
    with pytest.raises(ValueError, match="non-finite"):
        paired_corpus_bootstrap(np.zeros((5, 2)), np.zeros((5, 2)),
                                lambda s: s[..., 0] / s[..., 1], resamples=100)
    with pytest.raises(ValueError, match="unknown resampling scheme"):
        paired_bootstrap(np.zeros(5), np.zeros(5), scheme="jackknife")  # type: ignore[arg-type]


# --- multiple comparisons ----------------------------------------------------------------

def test_holm_and_bh_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])
    assert holm([]).size == 0 and benjamini_hochberg([]).size == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, 1.2])


def _reference_p_values(rng: np.random.Generator) -> np.ndarray:
    m = int(rng.integers(1, 40))
    p = np.concatenate([rng.uniform(0, 0.01, m // 3), rng.uniform(0, 1, m - m // 3)])
    p[rng.random(m) < 0.15] = 1.0
    return np.round(p, 3)  # rounding creates ties


def test_bh_matches_scipy() -> None:
    rng = np.random.default_rng(101)
    for _ in range(200):
        p = _reference_p_values(rng)
        np.testing.assert_allclose(benjamini_hochberg(p),
                                   false_discovery_control(p, method="bh"), rtol=1e-12)


def test_adjusted_p_values_reproduce_the_step_procedures() -> None:
    # Adjusted p-value = smallest level at which the procedure rejects the hypothesis.
    def holm_rejects(p: np.ndarray, alpha: float) -> np.ndarray:
        reject = np.zeros(p.size, bool)
        for k, i in enumerate(np.argsort(p, kind="stable")):
            if p[i] > alpha / (p.size - k):
                break
            reject[i] = True
        return reject

    def bh_rejects(p: np.ndarray, alpha: float) -> np.ndarray:
        ranked = np.sort(p)
        passing = np.nonzero(ranked <= alpha * np.arange(1, p.size + 1) / p.size)[0]
        return p <= ranked[passing[-1]] if passing.size else np.zeros(p.size, bool)

    rng = np.random.default_rng(102)
    for _ in range(200):
        p = _reference_p_values(rng)
        for alpha in (0.01, 0.05, 0.1, 0.25):
            np.testing.assert_array_equal(holm(p) <= alpha, holm_rejects(p, alpha))
            np.testing.assert_array_equal(benjamini_hochberg(p) <= alpha, bh_rejects(p, alpha))


# --- decisions -----------------------------------------------------------------------------

def _result(delta: float, low: float, high: float, p: float) -> PairedResult:
    return PairedResult(base=0.5, tuned=0.5 + delta, delta=delta, ci_low=low, ci_high=high,
                        p_value=p, n=1000, method="paired-bootstrap")


def test_non_inferiority_fails_only_below_the_margin() -> None:
    slightly_worse = _result(-0.01, -0.025, 0.005, 0.2)
    assert non_inferior(slightly_worse, 0.03, higher_is_better=True)
    assert not non_inferior(slightly_worse, 0.02, higher_is_better=True)
    # for perplexity the same numbers mean "lower is better": +0.005 is the worst case
    assert non_inferior(slightly_worse, 0.0, higher_is_better=False) is False
    assert non_inferior(slightly_worse, 0.006, higher_is_better=False)
    with pytest.raises(ValueError, match="margin"):
        non_inferior(slightly_worse, -0.01, higher_is_better=True)


def test_superior_and_regressed_need_direction_and_significance() -> None:
    better = _result(0.03, 0.01, 0.05, 0.004)
    assert superior(better, 0.05, higher_is_better=True)
    assert not superior(better, 0.001, higher_is_better=True)
    assert not superior(better, 0.05, higher_is_better=False)
    assert regressed(better, 0.05, higher_is_better=False)
    assert not regressed(better, 0.05, higher_is_better=True)
    assert not superior(_result(0.03, -0.01, 0.07, 0.2), 0.05, higher_is_better=True)
    with pytest.raises(ValueError, match="alpha"):
        superior(better, 1.5, higher_is_better=True)
