"""Checks of the arrays the paired tests take: shapes and finiteness, with messages naming
the argument."""

from __future__ import annotations

import numpy as np


def scores(name: str, x: np.ndarray, ndim: int = 1) -> np.ndarray:
    """Per-item scores as float64: shape ``(n_items,)`` (``ndim=2``: ``(S, n_items)``)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != ndim:
        shape = "a 1-D array of per-item scores" if ndim == 1 else "shape (S, n_items)"
        raise ValueError(f"{name}: need {shape}, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: scores must be finite")
    return a


def statistics(name: str, x: np.ndarray) -> np.ndarray:
    """Per-item sufficient statistics as float64, shape ``(n_items, k)``."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"{name}: need per-item statistics of shape (n_items, k), got "
                         f"{a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: statistics must be finite")
    return a
