"""Base and tuned reliability bins of each compared task with ``ece``: the comparison report
overlays them in one diagram per task, drawn from the same ``[confidence, correct]`` rows and
equal-mass bins ``ece`` is computed over."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from ftguard.metrics.calibration import ece_equal_mass, reliability_bins
from ftguard.record import CalibrationCurve, SampleResult, TaskResult


class PairedTask(Protocol):
    """What :mod:`ftguard.compare` knows of a task both runs evaluated."""

    suite: str
    base: TaskResult
    base_samples: list[SampleResult]
    tuned_samples: list[SampleResult]


def calibration_curves(pairs: Iterable[PairedTask]) -> list[CalibrationCurve]:
    """One curve per paired task whose samples (both runs) carry ``ece`` rows."""
    curves = []
    for pair in pairs:
        base = ece_rows(pair.base_samples)
        tuned = ece_rows(pair.tuned_samples)
        if not base or len(base) != len(tuned) or "ece" not in pair.base.metrics:
            continue
        curves.append(CalibrationCurve(
            suite=pair.suite, task=pair.base.name, n=len(base),
            base_ece=_ece(base), tuned_ece=_ece(tuned),
            base_bins=bins_of(base), tuned_bins=bins_of(tuned)))
    return curves


def ece_rows(samples: Sequence[SampleResult]) -> list[list[float]]:
    """The samples' ``[confidence, correct]`` rows (those that carry one)."""
    return [list(s.stats["ece"]) for s in samples if "ece" in s.stats]


def _ece(rows: list[list[float]]) -> float:
    return float(ece_equal_mass([r[0] for r in rows], [r[1] for r in rows]))


def bins_of(rows: list[list[float]]) -> list[list[float]]:
    """Equal-mass bins of ``rows``: ``[mean confidence, accuracy, items]`` each."""
    return [[b.confidence, b.accuracy, float(b.count)]
            for b in reliability_bins([r[0] for r in rows], [r[1] for r in rows])]
