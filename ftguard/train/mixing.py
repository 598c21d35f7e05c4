"""The training order: which example of which source is drawn at each step.

One function covers every case. With one file (``sizes=[n]``, ``ratios=[1.0]``) the order is
a seeded shuffle per epoch. With a mixture, draw ``t`` picks source ``s`` with probability
``ratio_s + (final_s - ratio_s) * t / (total - 1)`` (linear annealing; no final = constant)
and takes that source's next example from a seeded permutation, re-shuffled each time the
source is exhausted. The trainer feeds examples in this order with a sequential sampler.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _finals(ratios: Sequence[float], final_ratios: Sequence[float | None] | None) -> list[float]:
    if final_ratios is None:
        return list(ratios)
    if len(final_ratios) != len(ratios):
        raise ValueError("final_ratios must have one entry per source")
    return [r if f is None else f for r, f in zip(ratios, final_ratios)]


def shares(ratios: Sequence[float], final_ratios: Sequence[float | None] | None,
           t: int, total: int) -> list[float]:
    """Each source's share at draw ``t`` of ``total`` (normalised to sum to 1)."""
    finals = _finals(ratios, final_ratios)
    frac = t / (total - 1) if total > 1 else 0.0
    raw = [max(0.0, r + (f - r) * frac) for r, f in zip(ratios, finals)]
    norm = sum(raw)
    return [x / norm for x in raw]


def mixture_order(sizes: Sequence[int], ratios: Sequence[float],
                  final_ratios: Sequence[float | None] | None, total: int,
                  seed: int) -> list[tuple[int, int]]:
    """``total`` draws of ``(source index, example index)`` following the (annealed) ratios."""
    import numpy as np

    if len(sizes) != len(ratios) or not sizes:
        raise ValueError("sizes and ratios must have one entry per source")
    if any(n <= 0 for n in sizes):
        raise ValueError("every source needs at least one example")
    if total <= 0:
        return []
    rng = np.random.default_rng(seed)
    start = np.asarray(ratios, dtype=np.float64)
    end = np.asarray(_finals(ratios, final_ratios), dtype=np.float64)
    frac = np.arange(total) / (total - 1) if total > 1 else np.zeros(1)
    probs = np.clip(start[None, :] + (end - start)[None, :] * frac[:, None], 0.0, None)
    cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    draws = rng.random(total)
    picked = (draws[:, None] >= cumulative[:, :-1]).sum(axis=1) if len(sizes) > 1 \
        else np.zeros(total, dtype=np.int64)
    perms: list[list[int]] = [[] for _ in sizes]
    cursor = [0] * len(sizes)
    order: list[tuple[int, int]] = []
    for s in picked.tolist():
        if cursor[s] == len(perms[s]):
            perms[s] = rng.permutation(sizes[s]).tolist()
            cursor[s] = 0
        order.append((s, perms[s][cursor[s]]))
        cursor[s] += 1
    return order


def planned_draws(sizes: Sequence[int], ratios: Sequence[float],
                  final_ratios: Sequence[float | None] | None, epochs: float) -> int:
    """Draws needed so that the first source is seen ``epochs`` times in expectation.

    The mean share of source 0 over a linear schedule is ``(ratio_0 + final_0) / 2``; with one
    source this is simply ``ceil(epochs * sizes[0])``.
    """
    finals = _finals(ratios, final_ratios)
    mean_share = (ratios[0] / sum(ratios) + finals[0] / sum(finals)) / 2
    if mean_share <= 0:
        raise ValueError("the first source has a share of 0; it cannot set the epochs")
    return max(1, math.ceil(epochs * sizes[0] / mean_share - 1e-9))
