"""The set-metric swap test (equal-mass ECE as the metric): exact against brute-force
enumeration, a false-alarm rate at most alpha at small n by simulation, power on a real
calibration change, and the bootstrap interval of one run."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ftguard.metrics.calibration import ece_equal_mass
from ftguard.stats.set_swap import set_bootstrap, set_swap_test


def ece(rows: np.ndarray) -> np.ndarray:
    return ece_equal_mass(rows[..., 0], rows[..., 1])


def _run(rng: np.random.Generator, n: int, overconfidence: float = 0.0) -> np.ndarray:
    """Items whose top-label confidence overstates the chance of being right by ``overconfidence``."""
    chance = rng.uniform(0.3, 0.95, size=n)
    conf = np.clip(chance + overconfidence, 0.0, 1.0)
    return np.column_stack([np.round(conf, 3), (rng.uniform(size=n) < chance).astype(float)])


def test_exact_p_value_is_the_brute_force_enumeration() -> None:
    rng = np.random.default_rng(0)
    base, tuned = _run(rng, 7), _run(rng, 7, 0.2)
    result = set_swap_test(base, tuned, ece)
    observed = float(ece(tuned) - ece(base))
    hits = 0
    for coins in itertools.product((0, 1), repeat=7):
        swap = np.array(coins, dtype=bool)[:, None]
        b, t = np.where(swap, tuned, base), np.where(swap, base, tuned)
        hits += abs(float(ece(t) - ece(b))) >= abs(observed) - 1e-9 * 3
    assert result.method == "swap-exact" and result.p_value == pytest.approx(hits / 2**7)
    assert result.delta == pytest.approx(observed) and result.base == pytest.approx(float(ece(base)))


@pytest.mark.parametrize("n", [8, 30])
def test_false_alarm_rate_is_at_most_alpha(n: int) -> None:
    rng = np.random.default_rng(n)
    runs = 200
    p = np.array([set_swap_test(_run(rng, n), _run(rng, n), ece, resamples=199,
                                seed=s).p_value for s in range(runs)])
    # exchangeable runs: P(p < 0.05) <= 0.05 (+ 2.5 standard errors of the estimate)
    assert np.mean(p < 0.05) <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / runs)


def test_detects_a_model_that_became_overconfident() -> None:
    rng = np.random.default_rng(7)
    result = set_swap_test(_run(rng, 200), _run(rng, 200, 0.25), ece, resamples=999)
    assert result.delta > 0.1 and result.p_value < 0.01
    assert result.ci_low <= result.delta <= result.ci_high and result.ci_low > 0


def test_identical_runs_do_not_differ() -> None:
    rows = _run(np.random.default_rng(1), 12)
    result = set_swap_test(rows, rows.copy(), ece)
    assert result.delta == 0.0 and result.p_value == 1.0
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)


def test_bootstrap_interval_of_one_run() -> None:
    rows = _run(np.random.default_rng(2), 150, 0.1)
    value, low, high, stderr = set_bootstrap(rows, ece, resamples=500, seed=3)
    assert value == pytest.approx(float(ece(rows)))
    assert low <= value <= high and 0 <= low and high <= 1 and stderr is not None and stderr > 0
    assert set_bootstrap(rows, ece, resamples=500, seed=3) == (value, low, high, stderr)
    with pytest.raises(ValueError, match="same shape"):
        set_swap_test(rows, rows[:-1], ece)
