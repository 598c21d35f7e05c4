"""Statistics for paired comparisons of two runs on the same items.

Everything here is pure numpy/scipy and seeded; ``from ftguard.stats import ...`` is the
public entry point.

- :mod:`.power` -- how large a change a suite can detect (McNemar and paired-mean power).
- :mod:`.result` -- :class:`PairedResult` and the decisions built on it:
  :func:`non_inferior`, :func:`superior`, :func:`regressed`.
- :mod:`.binary` -- 0/1 scores: exact McNemar test with Tango's score interval.
- :mod:`.bootstrap` -- continuous scores and corpus metrics: paired bootstrap (the same
  resampled items for both runs), percentile interval and the p-value dual to it.
- :mod:`.resample` -- the resampling engine: resampled sums of per-item statistics.
- :mod:`.multiple` -- Holm and Benjamini-Hochberg adjustment of many p-values.
"""

from __future__ import annotations

from ftguard.stats.binary import mcnemar_exact, tango_interval
from ftguard.stats.bootstrap import paired_bootstrap, paired_corpus_bootstrap
from ftguard.stats.multiple import benjamini_hochberg, holm
from ftguard.stats.power import (
    DEFAULT_DISCORDANCE,
    PowerRow,
    mde_paired_binary,
    mde_paired_binary_approx,
    mde_paired_mean,
    power_paired_binary,
)
from ftguard.stats.resample import Scheme, resampled_sums
from ftguard.stats.result import Method, PairedResult, non_inferior, regressed, superior

__all__ = [
    "DEFAULT_DISCORDANCE",
    "Method",
    "PairedResult",
    "PowerRow",
    "Scheme",
    "benjamini_hochberg",
    "holm",
    "mcnemar_exact",
    "mde_paired_binary",
    "mde_paired_binary_approx",
    "mde_paired_mean",
    "non_inferior",
    "paired_bootstrap",
    "paired_corpus_bootstrap",
    "power_paired_binary",
    "regressed",
    "resampled_sums",
    "superior",
    "tango_interval",
]
