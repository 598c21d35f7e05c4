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
        base = _rows(pair.base_samples)
        tuned = _rows(pair.tuned_samples)
        if not base or len(base) != len(tuned) or "ece" not in pair.base.metrics:
            continue
        curves.append(CalibrationCurve(
            suite=pair.suite, task=pair.base.name, n=len(base),
            base_ece=_ece(base), tuned_ece=_ece(tuned),
            base_bins=_bins(base), tuned_bins=_bins(tuned)))
    return curves


def _rows(samples: Sequence[SampleResult]) -> list[list[float]]:
    return [list(s.stats["ece"]) for s in samples if "ece" in s.stats]


def _ece(rows: list[list[float]]) -> float:
    return float(ece_equal_mass([r[0] for r in rows], [r[1] for r in rows]))


def _bins(rows: list[list[float]]) -> list[list[float]]:
    return [[b.confidence, b.accuracy, float(b.count)]
            for b in reliability_bins([r[0] for r in rows], [r[1] for r in rows])]
