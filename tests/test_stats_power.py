"""Power analysis: the closed-form detectable change holds up in simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest, ttest_rel

from conftest import REPO, suite_yaml
from ftguard.stats import mde_paired_binary, mde_paired_binary_approx, mde_paired_mean


@pytest.mark.parametrize(("n", "discordance"), [(200, 0.2), (740, 0.2), (400, 0.1)])
def test_mcnemar_rejects_about_80_percent_at_the_mde(n: int, discordance: float) -> None:
    delta = mde_paired_binary(n, discordance)
    p01, p10 = (discordance + delta) / 2, (discordance - delta) / 2
    rng = np.random.default_rng(n)
    counts = rng.multinomial(n, [p01, p10, 1 - p01 - p10], size=2000)
    rejected = [binomtest(int(b), int(b + c), 0.5).pvalue < 0.05 for b, c, _ in counts]
    assert np.mean(rejected) == pytest.approx(0.80, abs=0.03)  # 3 simulation standard errors
    # Connor's normal approximation is a little optimistic for the exact test
    assert mde_paired_binary_approx(n, discordance) < delta < 1.1 * mde_paired_binary_approx(
        n, discordance)


def test_mde_shrinks_with_n_and_grows_with_discordance() -> None:
    assert mde_paired_binary(800) < mde_paired_binary(200) < mde_paired_binary(50)
    assert mde_paired_binary(200, 0.1) < mde_paired_binary(200, 0.3)
    assert mde_paired_binary(200, 0.05, power=0.9) > mde_paired_binary(200, 0.05, power=0.8)


def test_paired_mean_mde_matches_simulated_t_test_power() -> None:
    n, sd = 150, 0.3
    delta = mde_paired_mean(n, sd)
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(1000):
        base = rng.uniform(0, 1, n)
        hits += ttest_rel(base + delta + rng.normal(0, sd, n), base).pvalue < 0.05
    assert hits / 1000 == pytest.approx(0.80, abs=0.04)


def test_power_command(run_cli) -> None:
    code, out, _ = run_cli("power", REPO / "suites/general", "--discordance", "0.2")
    assert code == 0 and "all binary items" in out
    pooled = next(line for line in out.splitlines() if "all binary items" in line)
    assert float(pooled.split()[-1]) < 5.0  # the general suite detects a 5-point drop
    code, _, err = run_cli("power", REPO / "suites/general", "--alpha", "1.5")
    assert code == 2 and "--alpha 1.5" in err


def test_power_command_says_when_nothing_is_detectable(run_cli, make_suite) -> None:
    # 6 items: the exact test can reject (p = 1/32 at best), but at 20% discordance no
    # change of a 0/1 metric is detected with 80% power below 39 items. It used to print
    # 20.0 points -- the cap (the discordance itself), not a figure.
    suite = make_suite(suite_yaml("tiny"))
    code, out, _ = run_cli("power", suite)
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("tiny       mc"))
    assert "not detectable at n=6 (detectable from n=39)" in line and "20.0" not in out
    assert mde_paired_binary(38) is None and mde_paired_binary(39) is not None
