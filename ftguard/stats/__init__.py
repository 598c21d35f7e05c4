"""Statistics for paired comparisons of two runs on the same items.

Everything here is pure numpy/scipy and seeded; ``from ftguard.stats import ...`` is the
public entry point.

- :mod:`.power` -- how large a change a suite can detect (McNemar and paired-mean power).
- :mod:`.result` -- :class:`PairedResult` and the decisions built on it:
  :func:`non_inferior`, :func:`superior`, :func:`regressed`.
- :mod:`.binary` -- 0/1 scores: exact McNemar test with Tango's score interval.
- :mod:`.permutation` -- continuous scores and corpus metrics: sign-flip and swap
  permutation tests with the intervals that invert them; false-alarm rate <= alpha at
  every n (what compare uses).
- :mod:`.bootstrap` -- continuous scores and corpus metrics: paired bootstrap (the same
  resampled items for both runs), percentile interval and the p-value dual to it;
  anti-conservative below a few dozen items.
- :mod:`.resample` -- the resampling engine: resampled sums of per-item statistics.
- :mod:`.multiple` -- Holm and Benjamini-Hochberg adjustment of many p-values.
"""

from __future__ import annotations

from ftguard.stats.binary import mcnemar_exact, tango_interval
from ftguard.stats.bootstrap import paired_bootstrap, paired_corpus_bootstrap
from ftguard.stats.multiple import benjamini_hochberg, holm
from ftguard.stats.permutation import sign_flip_p_values, sign_flip_test
from ftguard.stats.power import (
    DEFAULT_DISCORDANCE,
    PowerRow,
    exact_testable,
    items_needed,
    items_needed_binary,
    items_needed_for,
    mde_for,
    mde_paired_binary,
    mde_paired_binary_approx,
    mde_paired_mean,
    mde_shift,
    power_paired_binary,
    smallest_detectable_n,
    smallest_testable_n,
)
from ftguard.stats.resample import Scheme, resampled_sums
from ftguard.stats.result import (
    Method,
    PairedResult,
    non_inferior,
    one_item,
    regressed,
    superior,
)
from ftguard.stats.swap import paired_swap_p_values, paired_swap_test

__all__ = [
    "DEFAULT_DISCORDANCE",
    "Method",
    "PairedResult",
    "PowerRow",
    "Scheme",
    "benjamini_hochberg",
    "exact_testable",
    "holm",
    "items_needed",
    "items_needed_binary",
    "items_needed_for",
    "mcnemar_exact",
    "mde_for",
    "mde_paired_binary",
    "mde_paired_binary_approx",
    "mde_paired_mean",
    "mde_shift",
    "non_inferior",
    "one_item",
    "paired_bootstrap",
    "paired_corpus_bootstrap",
    "paired_swap_p_values",
    "paired_swap_test",
    "power_paired_binary",
    "regressed",
    "resampled_sums",
    "sign_flip_p_values",
    "sign_flip_test",
    "smallest_detectable_n",
    "smallest_testable_n",
    "superior",
    "tango_interval",
]
