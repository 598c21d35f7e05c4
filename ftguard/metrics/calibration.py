"""Calibration of choice and classify tasks: does the model's confidence mean anything?

The probabilities are the *normalised choice probabilities*: a softmax over the summed
log-likelihoods of the task's choices (or labels), i.e. the model's distribution restricted to
the answers it may give. The top-label prediction is the argmax, the same as ``acc`` /
``accuracy`` (ties to the first choice).

- ``brier``: the multi-class Brier score of one item, ``sum_k (p_k - [k = gold])^2``, in
  [0, 2]; lower is better. A per-item score, so the paired tests apply to it directly.
- ``ece``: expected calibration error of the top label over **equal-mass bins**: the items
  sorted by confidence (stable: equal confidences keep item order) and cut into
  ``min(ECE_BINS, n)`` consecutive bins whose sizes differ by at most one (``np.array_split``);
  ``ECE = sum_b (n_b / n) * |accuracy_b - mean confidence_b|``, in [0, 1]; lower is better.
  It is not a mean of per-item values, so intervals and paired tests recompute it on
  resampled items (:func:`ece_equal_mass` is vectorised over leading axes for that).

:func:`reliability_bins` gives the same bins for the report's reliability diagram.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ftguard.metrics.base import mean_metric, set_metric

ECE_BINS = 10
"""Equal-mass bins of ``ece`` (fewer when a task has fewer items: one item per bin)."""


def choice_probabilities(loglikelihoods: Sequence[float]) -> np.ndarray:
    """Softmax of the choices' summed log-likelihoods (numerically stable; a choice of
    log-likelihood ``-inf`` gets probability 0). ValueError when no choice is finite."""
    lls = np.asarray(loglikelihoods, dtype=np.float64)
    if lls.size == 0 or not np.isfinite(lls).any() or np.isnan(lls).any():
        raise ValueError(f"no finite choice log-likelihood among {lls.tolist()}")
    shifted = np.exp(lls - lls[np.isfinite(lls)].max())
    return shifted / shifted.sum()


def top_label(probabilities: np.ndarray, gold: int) -> tuple[float, float]:
    """(confidence of the predicted choice, 1.0 when it is the gold one else 0.0)."""
    pred = int(np.argmax(probabilities))
    return float(probabilities[pred]), float(pred == gold)


@mean_metric("brier", higher_is_better=False, kind=("choice", "classify"), binary=False,
             description="multi-class Brier score of the normalised choice probabilities "
                         "(0 = certain and right, 2 = certain and wrong)", bounds=(0.0, 2.0))
def brier_score(probabilities: np.ndarray, gold: int) -> float:
    """Multi-class Brier score of one item: squared distance to the gold one-hot, in [0, 2]."""
    target = np.zeros_like(probabilities)
    target[gold] = 1.0
    return float(np.square(probabilities - target).sum())


def _bin_edges(n: int, n_bins: int) -> list[tuple[int, int]]:
    """[start, stop) of each equal-mass bin over ``n`` sorted items."""
    count = min(n_bins, n)
    sizes = [len(part) for part in np.array_split(np.arange(n), count)]
    edges, start = [], 0
    for size in sizes:
        edges.append((start, start + size))
        start += size
    return edges


def ece_equal_mass(confidence: np.ndarray, correct: np.ndarray,
                   n_bins: int = ECE_BINS) -> np.ndarray:
    """Expected calibration error over equal-mass bins along the last axis (items); leading
    axes are independent sets (bootstrap resamples: shape ``(B, n)`` -> ``(B,)``)."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.shape != hit.shape or conf.shape[-1] == 0:
        raise ValueError(f"confidence {conf.shape} and correct {hit.shape} must be equal, "
                         "non-empty shapes")
    n = conf.shape[-1]
    order = np.argsort(conf, axis=-1, kind="stable")
    conf = np.take_along_axis(conf, order, axis=-1)
    hit = np.take_along_axis(hit, order, axis=-1)
    total = np.zeros(conf.shape[:-1])
    for start, stop in _bin_edges(n, n_bins):
        gap = hit[..., start:stop].mean(axis=-1) - conf[..., start:stop].mean(axis=-1)
        total += (stop - start) / n * np.abs(gap)
    return total


@dataclass(frozen=True)
class ReliabilityBin:
    """One equal-mass bin of the reliability diagram."""

    confidence: float
    """Mean confidence of its items."""
    accuracy: float
    """Share of its items whose top choice is the gold one."""
    count: int


def reliability_bins(confidence: Sequence[float], correct: Sequence[float],
                     n_bins: int = ECE_BINS) -> list[ReliabilityBin]:
    """The bins :func:`ece_equal_mass` uses, lowest confidence first."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    order = np.argsort(conf, kind="stable")
    conf, hit = conf[order], hit[order]
    return [ReliabilityBin(float(conf[a:b].mean()), float(hit[a:b].mean()), b - a)
            for a, b in _bin_edges(len(conf), n_bins)]


@set_metric("ece", higher_is_better=False, kind=("choice", "classify"),
            description=f"expected calibration error of the top choice over {ECE_BINS} "
                        "equal-mass bins of the normalised choice probabilities")
def ece_of_rows(rows: np.ndarray) -> np.ndarray:
    """``ece`` from per-sample rows ``[confidence, correct]`` (the record's ``stats``)."""
    return ece_equal_mass(rows[..., 0], rows[..., 1])
