"""Reliability diagrams: per task with ``ece``, each equal-mass bin's accuracy against its mean
confidence (the diagonal is perfect calibration), from the samples' ``[confidence, correct]``
rows -- the same bins ``ece`` is computed over."""

from __future__ import annotations

from typing import Any

from ftguard.metrics.calibration import reliability_bins
from ftguard.record import RunRecord

SIZE, MARGIN = 240, 36
"""Plot square and margin in pixels."""


def reliability_charts(run: RunRecord) -> list[dict[str, Any]]:
    """Geometry of one diagram per task whose samples carry ``ece`` rows."""
    charts = []
    for suite in run.suites:
        for task in suite.tasks:
            rows = [s.stats["ece"] for s in task.samples if "ece" in s.stats]
            if not rows or "ece" not in task.metrics:
                continue
            bins = reliability_bins([r[0] for r in rows], [r[1] for r in rows])
            largest = max(b.count for b in bins)
            points = [{"x": _x(b.confidence), "y": _y(b.accuracy),
                       "r": round(3 + 5 * b.count / largest, 1),
                       "text": f"confidence {b.confidence:.2f}, accuracy {b.accuracy:.2f}, "
                               f"{b.count} items"} for b in bins]
            charts.append({"label": f"{suite.name}/{task.name}",
                           "ece": task.metrics["ece"].value, "n": len(rows), "points": points,
                           "size": SIZE + 2 * MARGIN, "lo": MARGIN, "hi": MARGIN + SIZE,
                           "ticks": [{"v": f"{v:.1f}", "x": _x(v), "y": _y(v)}
                                     for v in (0.0, 0.5, 1.0)]})
    return charts


def _x(value: float) -> float:
    return round(MARGIN + value * SIZE, 1)


def _y(value: float) -> float:
    return round(MARGIN + (1 - value) * SIZE, 1)
