"""The resampling engine: per-item statistics summed over bootstrap resamples of the items.

Every paired bootstrap in ftguard reduces to this: stack the per-item statistics of both
runs side by side (an ``(n, k)`` array), draw one set of item weights per resample, and
take weighted column sums. Because both runs are columns of one array they always get the
same weights -- that is what makes the bootstrap paired.

Two weight schemes:

- ``multinomial`` -- Efron's bootstrap: n items drawn with replacement, the weight of an
  item is how often it was drawn. Exact and what ``ftguard.metrics.aggregate`` uses (the
  same seed draws the same resamples), but it needs ~17 random bits per item and
  resample: 10,000 resamples of 100,000 items take ~12 s on two CPU cores.
- ``double-or-nothing`` -- each item independently gets weight 0 or 2 with probability
  1/2 (Owen & Eckles 2012, "Bootstrapping data arrays of arbitrary order"; the Rademacher
  multiplier bootstrap). The weights have the multinomial's mean and variance (1 and 1),
  so resampled statistics have the right spread; they miss the multinomial's third moment,
  which matters only for small n. One random bit per item, and the weighted sums are a
  float32 matrix product of unpacked bits: ~5x faster (``benchmarks/compare_speed.py``).

``auto`` (the default) uses ``multinomial`` up to ``_EXACT_MAX_CELLS`` item-resample
cells or below ``_HALF_MIN_ITEMS`` items, ``double-or-nothing`` beyond. Results are scaled
to ``n`` items (weighted mean times n), so corpus functions see sums of the usual size.

The weighted sums are tall-and-skinny matrix products. OpenBLAS splits them over all cores
and its threads spin-wait for each other: on a 2-core machine with anything else running,
that turned 0.6 s into 6-15 s. When ``threadpoolctl`` is installed the products run on one
BLAS thread (they are memory-bound, so an idle machine loses little).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from typing import Any, Literal

import numpy as np

Scheme = Literal["auto", "multinomial", "double-or-nothing"]

_EXACT_MAX_CELLS = 50_000_000
"""``auto`` resamples exactly up to this many item x resample cells (~0.3 s)."""
_HALF_MIN_ITEMS = 1_000
"""``auto`` never uses double-or-nothing below this many items (its third moment is off,
and tiny samples could drop every item)."""
_MULTINOMIAL_CHUNK = 1 << 18
"""Count-matrix cells per chunk: chunks that stay in cache are faster than one big array."""
_HALF_CHUNK = 1 << 20
"""Bit-matrix cells per chunk (float32: 4 MiB; 10 resamples of 100,000 items)."""


def choose_scheme(scheme: Scheme, n: int, resamples: int) -> str:
    """The scheme ``auto`` stands for at ``n`` items and ``resamples`` resamples."""
    if scheme == "auto":
        exact = n < _HALF_MIN_ITEMS or n * resamples <= _EXACT_MAX_CELLS
        return "multinomial" if exact else "double-or-nothing"
    if scheme not in ("multinomial", "double-or-nothing"):
        raise ValueError(f"unknown resampling scheme {scheme!r}; use auto, multinomial or "
                         "double-or-nothing")
    if scheme == "double-or-nothing" and n < 64:
        raise ValueError(f"double-or-nothing resampling needs >= 64 items, got {n}; use "
                         "multinomial")
    return scheme


def resampled_sums(stats: np.ndarray, resamples: int, seed: int,
                   scheme: Scheme = "auto") -> tuple[np.ndarray, str]:
    """Column sums of ``stats`` (shape ``(n, k)``) over ``resamples`` bootstrap resamples
    of its rows, scaled to n rows; returns shape ``(resamples, k)`` and the scheme used.

    Deterministic for a given seed. With ``multinomial`` the sums are exact float64 (the
    same resamples as ``ftguard.metrics.aggregate.bootstrap_sums``); ``double-or-nothing``
    sums centred statistics in float32 and adds the mean back in float64, which keeps the
    error to ~1e-6 of the resampled spread.
    """
    stats = np.asarray(stats, dtype=np.float64)
    if stats.ndim != 2 or stats.shape[0] == 0:
        raise ValueError(f"stats must have shape (n_items, k) with n_items >= 1, got "
                         f"{stats.shape}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    used = choose_scheme(scheme, stats.shape[0], resamples)
    rng = np.random.default_rng(seed)
    with one_blas_thread():
        if used == "multinomial":
            return _multinomial(stats, resamples, rng), used
        return _double_or_nothing(stats, resamples, rng), used


@cache
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it BLAS keeps its default thread count
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


def _multinomial(stats: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    n, k = stats.shape
    out = np.empty((resamples, k))
    chunk = max(1, min(resamples, _MULTINOMIAL_CHUNK // n))
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        rows = rng.integers(0, n, size=(b, n))
        if k <= 2:  # gathering the drawn rows beats counting them for one or two columns
            out[start:start + b] = stats[rows].sum(axis=1)
            continue
        # How often each item is drawn in each resample, then one matrix product.
        flat = (rows + n * np.arange(b)[:, None]).ravel()
        counts = np.bincount(flat, minlength=b * n).reshape(b, n)
        out[start:start + b] = counts.astype(np.float64) @ stats
    return out


def _double_or_nothing(stats: np.ndarray, resamples: int,
                       rng: np.random.Generator) -> np.ndarray:
    n, k = stats.shape
    mean = stats.mean(axis=0)
    # Centred, the float32 sums only carry the resampling noise, not the bulk of the total;
    # the column of ones counts the kept items (exact in float32 below 2**24).
    centred = np.hstack([stats - mean, np.ones((n, 1))]).astype(np.float32)
    n_bytes = (n + 7) // 8
    means = np.empty((resamples, k))
    chunk = max(1, min(resamples, _HALF_CHUNK // n))
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        packed = rng.integers(0, 256, size=(b, n_bytes), dtype=np.uint8)
        sums = np.unpackbits(packed, axis=1, count=n).astype(np.float32) @ centred
        means[start:start + b] = sums[:, :k] / np.maximum(sums[:, k:], 1)
    return (means + mean) * n
