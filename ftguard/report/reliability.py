"""Reliability diagrams: per task with ``ece``, each equal-mass bin's accuracy against its mean
confidence (the diagonal is perfect calibration), from the samples' ``[confidence, correct]``
rows -- the same bins ``ece`` is computed over. A run report draws one series per task; a
comparison report overlays base and tuned (:class:`ftguard.record.CalibrationCurve`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftguard.compare_calibration import bins_of, ece_rows
from ftguard.record import Comparison, RunRecord

SIZE, MARGIN = 240, 36
"""Plot square and margin in pixels."""

Bin = Sequence[float]
"""``[mean confidence, accuracy, items]``."""


def reliability_charts(run: RunRecord) -> list[dict[str, Any]]:
    """Geometry of one diagram per task whose samples carry ``ece`` rows."""
    charts = []
    for suite in run.suites:
        for task in suite.tasks:
            rows = ece_rows(task.samples)
            if not rows or "ece" not in task.metrics:
                continue
            charts.append(_chart(f"{suite.name}/{task.name}", len(rows),
                                 [("run", "run", task.metrics["ece"].value, bins_of(rows))]))
    return charts


def comparison_charts(c: Comparison) -> list[dict[str, Any]]:
    """One diagram per compared task with ``ece``: base and tuned bins overlaid."""
    return [_chart(f"{k.suite}/{k.task}", k.n, [("base", "base", k.base_ece, k.base_bins),
                                                ("tuned", "tuned", k.tuned_ece, k.tuned_bins)])
            for k in c.calibration]


def _chart(label: str, n: int,
           series: list[tuple[str, str, float, Sequence[Bin]]]) -> dict[str, Any]:
    """``series``: (name, CSS class, ece, bins) each; a bin's dot grows with its items and a
    line joins a series' bins in order of confidence."""
    largest = max((b[2] for _, _, _, bins in series for b in bins), default=1)
    drawn = []
    for name, css, ece, bins in series:
        points = [{"x": _x(b[0]), "y": _y(b[1]), "r": round(3 + 5 * b[2] / largest, 1),
                   "text": f"{name}: confidence {b[0]:.2f}, accuracy {b[1]:.2f}, "
                           f"{int(b[2])} items"} for b in bins]
        drawn.append({"name": name, "css": css, "ece": ece, "points": points,
                      "path": " ".join(f"{p['x']},{p['y']}" for p in points)})
    return {"label": label, "n": n, "series": drawn, "ece": drawn[0]["ece"],
            "size": SIZE + 2 * MARGIN, "lo": MARGIN, "hi": MARGIN + SIZE,
            "ticks": [{"v": f"{v:.1f}", "x": _x(v), "y": _y(v)} for v in (0.0, 0.5, 1.0)]}


def _x(value: float) -> float:
    return round(MARGIN + value * SIZE, 1)


def _y(value: float) -> float:
    return round(MARGIN + (1 - value) * SIZE, 1)
