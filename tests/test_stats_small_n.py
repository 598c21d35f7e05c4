"""Paired tests that hold their level at every n: exact McNemar (0/1 scores), the sign-flip
test (means of continuous scores) and the swap test (corpus metrics), checked by
simulation under a true null at n = 3 ... 500, against brute-force enumeration, and for
power and interval coverage.

A true null here: each item has its own quality (difficulty, length, ...) and the two runs
are two independent draws around it, so base and tuned are exchangeable within every item.
Run as a script (``.venv/bin/python tests/test_stats_small_n.py``) to print the table of
false-alarm rates.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import norm

from ftguard.metrics.bleu_chrf import BLEU_MAX_ORDER, bleu_from_stats
from ftguard.metrics.perplexity import perplexity_from_stats
from ftguard.stats import (
    DEFAULT_DISCORDANCE,
    PairedResult,
    items_needed,
    mcnemar_exact,
    mde_paired_binary,
    paired_corpus_bootstrap,
    paired_swap_p_values,
    paired_swap_test,
    power_paired_binary,
    regressed,
    sign_flip_p_values,
    sign_flip_test,
    smallest_testable_n,
)

ALPHA = 0.05
SIMULATIONS = 2000
SIZES = (3, 5, 10, 20, 50, 500)
RESAMPLES = 199
"""Monte Carlo p-values (1 + k) / (1 + B) are valid at any B; 199 keeps 2,000 x 500 cheap."""


def allowed(rate_of: int = SIMULATIONS) -> float:
    """alpha plus 2.6 simulation standard errors (one-sided 0.5%)."""
    return ALPHA + 2.6 * math.sqrt(ALPHA * (1 - ALPHA) / rate_of)


# --- null data: base and tuned exchangeable within each item -----------------------------

def binary_null(rng: np.random.Generator, sims: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """0/1 scores: per-item success probability from a shared latent difficulty (mean
    accuracy ~0.6, many items near 0 or 1, ~20% discordant)."""
    p = norm.cdf(0.5 + 2.0 * rng.normal(size=(sims, n)))
    return rng.random((sims, n)) < p, rng.random((sims, n)) < p


def f1_null(rng: np.random.Generator, sims: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Token-F1-like scores: skewed item quality (Beta(0.5, 1.2)), 1-5 reference tokens, the
    score a share of them -- values in {0, 1/5, ..., 1}, so many exact ties and zero
    differences (about a third of the items at n = 500)."""
    quality = rng.beta(0.5, 1.2, (sims, n))
    tokens = rng.integers(1, 6, (sims, n))
    return (rng.binomial(tokens, quality) / tokens, rng.binomial(tokens, quality) / tokens)


def perplexity_null(rng: np.random.Generator, sims: int, n: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``[nll, tokens, words, bytes]`` per document: heavy-tailed lengths (5 + Poisson of a
    lognormal), a per-document NLL rate, each run's NLL noisy around it."""
    tokens = 5 + rng.poisson(rng.lognormal(4, 0.8, (sims, n))).astype(float)
    rate = 2.0 + 0.5 * rng.normal(size=(sims, n))

    def run() -> np.ndarray:
        nll = tokens * rate + 0.8 * np.sqrt(tokens) * rng.normal(size=(sims, n))
        return np.stack([nll, tokens, np.ceil(0.75 * tokens), 4 * tokens], axis=-1)
    return run(), run()


def bleu_null(rng: np.random.Generator, sims: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """sacrebleu's per-segment statistics ``[hyp_len, ref_len, correct_1..4, total_1..4]``:
    per-item reference length and translation quality q; each run's hypothesis length
    varies around the reference's, and its k-gram matches are Binomial(total_k, q^k)."""
    ref_len = 5 + rng.poisson(15, (sims, n))
    quality = rng.beta(2, 2, (sims, n))

    def run() -> np.ndarray:
        hyp_len = np.maximum(1, ref_len + np.rint(rng.normal(0, 3, (sims, n)))).astype(int)
        orders = np.arange(1, BLEU_MAX_ORDER + 1)
        total = np.maximum(hyp_len[..., None] - orders + 1, 0)
        correct = rng.binomial(total, quality[..., None] ** orders)
        return np.concatenate([hyp_len[..., None], ref_len[..., None], correct, total],
                              axis=-1).astype(float)
    return run(), run()


def false_alarm_rate(kind: str, n: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    if kind == "binary":
        base, tuned = binary_null(rng, SIMULATIONS, n)
        return float(np.mean([mcnemar_exact(b, t).p_value < ALPHA for b, t in zip(base, tuned)]))
    if kind == "f1":
        p = sign_flip_p_values(*f1_null(rng, SIMULATIONS, n), resamples=RESAMPLES, seed=seed)
    else:
        make, corpus_fn = {"perplexity": (perplexity_null, perplexity_from_stats),
                           "bleu": (bleu_null, bleu_from_stats)}[kind]
        p = paired_swap_p_values(*make(rng, SIMULATIONS, n), corpus_fn, resamples=RESAMPLES,
                                 seed=seed)
    return float(np.mean(p < ALPHA))


KINDS = ("binary", "f1", "perplexity", "bleu")


@pytest.mark.parametrize("kind", KINDS)
def test_false_alarm_rate_is_at_most_alpha_at_every_n(kind: str) -> None:
    rates = {n: false_alarm_rate(kind, n, seed=100 + n) for n in SIZES}
    assert all(rate <= allowed() for rate in rates.values()), rates
    # below 6 items no exact test can reject at 5% (smallest p = 2 / 2^n)
    assert rates[3] == rates[5] == 0.0
    # and the tests are not trivially conservative where they can reject: 2.5-5.5% at 500
    assert rates[500] >= 0.02, rates


def test_the_percentile_bootstrap_it_replaces_false_alarms_at_three_documents() -> None:
    # The reason for the switch: resampling 3 or 4 documents, the percentile bootstrap
    # "finds" a perplexity change in a quarter or more of pairs of exchangeable runs
    # (simulated: ~30% at n = 3, ~25% at n = 4), where the swap test cannot reject at all.
    rng = np.random.default_rng(7)
    for n in (3, 4):
        base, tuned = perplexity_null(rng, 200, n)
        rate = np.mean([paired_corpus_bootstrap(b, t, perplexity_from_stats, resamples=200,
                                                seed=i).p_value < ALPHA
                        for i, (b, t) in enumerate(zip(base, tuned))])
        assert rate > 0.15, (n, rate)
        swap = paired_swap_p_values(base, tuned, perplexity_from_stats)
        assert swap.min() >= 2 / 2**n > ALPHA  # the exact swap test: never below 2 / 2^n


# --- batch and single agree; exact matches brute force ---------------------------------

def test_batched_p_values_are_those_of_the_single_tests() -> None:
    rng = np.random.default_rng(11)
    for n in (4, 20, 60):  # exact, mixed exact/Monte Carlo rows, Monte Carlo
        base, tuned = f1_null(rng, 30, n)
        batch = sign_flip_p_values(base, tuned, resamples=RESAMPLES, seed=3)
        single = [sign_flip_test(b, t, resamples=RESAMPLES, seed=3).p_value
                  for b, t in zip(base, tuned)]
        np.testing.assert_array_equal(batch, single)
        base, tuned = bleu_null(rng, 30, n)
        tuned[:10, : n // 2] = base[:10, : n // 2]  # some rows with few differing items
        batch = paired_swap_p_values(base, tuned, bleu_from_stats, resamples=RESAMPLES, seed=3)
        single = [paired_swap_test(b, t, bleu_from_stats, resamples=RESAMPLES, seed=3).p_value
                  for b, t in zip(base, tuned)]
        np.testing.assert_array_equal(batch, single)


def _brute_sign_flip_p(d: np.ndarray) -> float:
    observed = abs(d.sum())
    hits = [abs(np.dot(signs, d)) >= observed - 1e-12
            for signs in itertools.product((1, -1), repeat=d.size)]
    return float(np.mean(hits))


def _brute_swap_p(base: np.ndarray, tuned: np.ndarray, corpus_fn) -> float:
    observed = abs(corpus_fn(tuned.sum(axis=0)) - corpus_fn(base.sum(axis=0)))
    hits = []
    for swap in itertools.product((False, True), repeat=base.shape[0]):
        w = np.array(swap)[:, None]
        t, b = np.where(w, base, tuned), np.where(w, tuned, base)
        hits.append(abs(corpus_fn(t.sum(axis=0)) - corpus_fn(b.sum(axis=0))) >= observed - 1e-9)
    return float(np.mean(hits))


def test_exact_enumeration_matches_brute_force_at_six_items() -> None:
    rng = np.random.default_rng(21)
    for _ in range(20):
        base = rng.integers(0, 4, 6) / 3  # ties and zero differences
        tuned = rng.integers(0, 4, 6) / 3
        result = sign_flip_test(base, tuned)
        assert result.method == "sign-flip-exact" and result.resamples is None
        assert result.p_value == pytest.approx(_brute_sign_flip_p(tuned - base), abs=1e-12)
        # the interval is exactly the set of shifts the same test does not reject
        d = tuned - base
        if math.isfinite(result.ci_low):
            for edge, outward in ((result.ci_low, -1e-7), (result.ci_high, 1e-7)):
                assert _brute_sign_flip_p(d - edge) >= ALPHA
                assert _brute_sign_flip_p(d - edge - outward) < ALPHA
        b, t = perplexity_null(rng, 1, 6)
        b, t = b[0], t[0]
        swap = paired_swap_test(b, t, perplexity_from_stats)
        assert swap.method == "swap-exact"
        assert swap.p_value == pytest.approx(_brute_swap_p(b, t, perplexity_from_stats),
                                             abs=1e-12)


def test_three_equal_differences_are_not_significant_and_not_bounded() -> None:
    result = sign_flip_test(np.zeros(3), np.full(3, 0.2))
    assert result.p_value == pytest.approx(0.25)  # 2 of the 8 sign patterns tie
    assert (result.ci_low, result.ci_high) == (-math.inf, math.inf)
    assert not result.testable and result.mde is None
    assert result.delta == pytest.approx(0.2) and result.method == "sign-flip-exact"
    six = sign_flip_test(np.zeros(6), np.full(6, 0.2))
    assert six.testable and six.p_value == pytest.approx(1 / 32)
    assert (six.ci_low, six.ci_high) == pytest.approx((0.2, 0.2))


def test_identical_runs_give_p_one() -> None:
    rng = np.random.default_rng(31)
    for n in (4, 40):
        stats = bleu_null(rng, 1, n)[0][0]
        result = paired_swap_test(stats, stats.copy(), bleu_from_stats)
        assert (result.delta, result.p_value) == (0.0, 1.0)
        assert result.method == "swap-exact"  # no item differs: one pattern
        scores = rng.random(n)
        flip = sign_flip_test(scores, scores.copy())
        assert (flip.delta, flip.p_value, flip.method) == (0.0, 1.0, "sign-flip-exact")


def test_methods_and_monte_carlo_fields() -> None:
    rng = np.random.default_rng(41)
    base, tuned = f1_null(rng, 1, 300)
    tuned[0] = np.clip(tuned[0] + 0.3 * rng.random(300), 0, 1)
    mc = sign_flip_test(base[0], tuned[0], resamples=999, seed=5)
    assert (mc.method, mc.resamples, mc.seed) == ("sign-flip-mc", 999, 5)
    assert mc.p_value == pytest.approx(1 / 1000)  # no random pattern is as extreme
    assert mc.ci_low > 0 and mc.testable and mc.mde is not None
    assert sign_flip_test(base[0], tuned[0], resamples=999, seed=5) == mc  # seeded
    large = sign_flip_test(rng.random(20_000), rng.random(20_000))
    assert large.method == "paired-t" and large.p_value > 0.001
    base, tuned = perplexity_null(rng, 1, 40)
    swap = paired_swap_test(base[0], tuned[0], perplexity_from_stats, resamples=499)
    assert swap.method == "swap-mc" and swap.resamples == 499
    assert swap.base == pytest.approx(perplexity_from_stats(base[0].sum(axis=0)))
    with pytest.raises(ValueError, match="non-finite"):
        paired_swap_test(np.zeros((5, 2)), np.ones((5, 2)), lambda s: s[..., 0] / s[..., 1])
    with pytest.raises(ValueError, match="resamples must be >= 99"):
        sign_flip_test(np.zeros(5), np.ones(5), resamples=10)


def test_p_value_is_below_alpha_exactly_when_the_interval_excludes_zero() -> None:
    # the interval inverts the same test, on the same Monte Carlo patterns
    rng = np.random.default_rng(81)
    decisions = []
    for i in range(150):
        n = int(rng.integers(6, 120))
        d = rng.normal(0.5 * rng.random(), 1.0, n)
        r = sign_flip_test(np.zeros(n), d, resamples=RESAMPLES, seed=i)
        excludes = r.ci_low > 0 or r.ci_high < 0
        assert (r.p_value < ALPHA) == excludes, (n, r)
        decisions.append(excludes)
    assert 0.2 < np.mean(decisions) < 0.8  # the cases straddle the boundary
    zeros = sign_flip_test(np.ones(10), np.ones(10))
    assert (zeros.ci_low, zeros.ci_high, zeros.p_value) == (0.0, 0.0, 1.0)


# --- power ----------------------------------------------------------------------------------

def test_mcnemar_detects_a_five_point_drop_on_1000_items() -> None:
    # 20% of items discordant: 12.5% right-to-wrong, 7.5% wrong-to-right (-5 points).
    rng = np.random.default_rng(51)
    counts = rng.multinomial(1000, [0.125, 0.075, 0.8], size=1000)
    fired = []
    for right_to_wrong, wrong_to_right, same in counts:
        base = np.repeat([1, 0, 1], [right_to_wrong, wrong_to_right, same])
        tuned = np.repeat([0, 1, 1], [right_to_wrong, wrong_to_right, same])
        fired.append(regressed(mcnemar_exact(base, tuned), ALPHA, higher_is_better=True))
    assert np.mean(fired) >= 0.80  # simulated 0.94; exact power 0.938
    assert power_paired_binary(1000, 0.2, -0.05) == pytest.approx(0.938, abs=0.002)
    result = mcnemar_exact(base, tuned)
    assert result.testable and result.mde is not None and result.mde < 0.05


def test_power_fields_say_when_nothing_is_detectable() -> None:
    assert smallest_testable_n() == 6 and smallest_testable_n("swap-mc", 0.01) == 8
    five = mcnemar_exact(np.array([1, 1, 1, 1, 1]), np.array([0, 0, 0, 0, 0]))
    assert not five.testable and five.mde is None and five.p_value == 0.0625
    assert five.spread == 1.0  # all five items discordant
    # a figure, not the cap: at 20% discordance nothing is detectable with 80% power below
    # 39 items, and the MDE then starts near the discordance itself
    assert mde_paired_binary(38) is None and 0.19 < mde_paired_binary(39) < 0.2
    ten = mcnemar_exact(np.ones(10), np.ones(10))
    assert ten.testable and ten.mde is None and ten.spread == DEFAULT_DISCORDANCE
    assert items_needed(ten, 0.05) == 658 and items_needed(ten, 0.25) is None
    flip = sign_flip_test(np.zeros(30), np.linspace(-0.5, 0.6, 30))
    needed = items_needed(flip, flip.mde)
    assert needed is not None and abs(needed - 30) <= 1
    assert items_needed(flip, 10.0) == 6  # huge changes still need a testable n


def test_sign_flip_mde_has_about_80_percent_power() -> None:
    # Normal per-item differences with sd 1 shifted by the reported MDE: the t-based MDE at
    # the exact test's attainable level (simulated: 73% at n = 6, 78% at 8, 79% at 10-40;
    # the plain normal approximation gave 45% at 6 and 73% at 10).
    rng = np.random.default_rng(61)
    for n in (8, 40):
        unit = rng.normal(size=n)
        mde = sign_flip_test(np.zeros(n), (unit - unit.mean()) / unit.std(ddof=1)).mde
        assert mde is not None
        p = sign_flip_p_values(np.zeros((2000, n)), rng.normal(mde, 1.0, (2000, n)),
                               resamples=999)
        assert 0.75 <= np.mean(p < ALPHA) <= 0.85, (n, np.mean(p < ALPHA))


# --- interval coverage --------------------------------------------------------------------

@pytest.mark.parametrize(("n", "sims"), [(8, 600), (12, 600), (30, 600), (200, 400)])
def test_sign_flip_interval_covers_the_shift(n: int, sims: int) -> None:
    # Shift alternative: exchangeable skewed F1-like scores, tuned moved by +0.04.
    # Simulated coverage 0.968 (n = 8, exact), 0.957 (12), 0.950 (30), 0.948 (200).
    rng = np.random.default_rng(70 + n)
    base, tuned = f1_null(rng, sims, n)
    tuned = tuned + 0.04
    results: list[PairedResult] = [sign_flip_test(b, t, resamples=499, seed=i)
                                   for i, (b, t) in enumerate(zip(base, tuned))]
    covered = np.mean([r.ci_low <= 0.04 <= r.ci_high for r in results])
    assert covered >= 0.95 - 2.6 * math.sqrt(0.05 * 0.95 / sims), covered
    assert np.median([r.ci_high - r.ci_low for r in results]) < 1.0  # and bounded


if __name__ == "__main__":
    import time

    start = time.perf_counter()
    print(f"false-alarm rate at alpha {ALPHA}, {SIMULATIONS} simulated pairs per cell "
          f"(allowed <= {allowed():.4f})")
    print(f"{'kind':<11}" + "".join(f"{f'n={n}':>9}" for n in SIZES))
    for kind in KINDS:
        print(f"{kind:<11}" + "".join(f"{false_alarm_rate(kind, n, 100 + n):>9.4f}"
                                      for n in SIZES))
    print(f"{time.perf_counter() - start:.1f} s")
