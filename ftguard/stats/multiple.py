"""Adjusting p-values when one comparison tests many metrics, tasks and suites.

- :func:`holm`: controls the family-wise error rate (the chance of any false alarm);
  uniformly more powerful than Bonferroni, valid under any dependence.
- :func:`benjamini_hochberg`: controls the false discovery rate (the expected share of
  false alarms among the flagged rows); valid for independent or positively dependent
  tests, the usual case for tasks scored on one pair of models.

Both return adjusted p-values in the input order: reject where ``adjusted < alpha``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_p_values(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p-values must be a 1-D sequence, got shape {p.shape}")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must lie in [0, 1] (no NaN)")
    return p


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values.

    Sorted ascending, the i-th smallest of m p-values (i from 1) becomes
    ``max over j <= i of min(1, (m - j + 1) * p_(j))``; the running maximum keeps the
    adjusted values in the order of the raw ones.
    """
    p = _as_p_values(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg (1995) adjusted p-values (``q``-values), as
    ``scipy.stats.false_discovery_control(p, method="bh")`` computes them.

    Sorted ascending, the i-th smallest becomes ``min over j >= i of min(1, m p_(j) / j)``.
    """
    p = _as_p_values(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return adjusted
