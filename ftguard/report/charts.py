"""SVG chart geometry shared by the report's sections: horizontal bar charts with CI whiskers
(gate and results reports) and line charts over steps or merging weights (training, merge
sweep), with their scales, ticks, marked points and legends.

Each function returns plain numbers and strings that the templates draw; nothing here
escapes or renders text (the templates autoescape every label).
"""

from __future__ import annotations

import math
from typing import Any

WIDTH = 760
"""Width of a line chart in SVG user units."""


def scale(values: list[float]) -> tuple[float, float]:
    """An axis range holding ``values`` and zero, padded by 8%."""
    lo, hi = min([0.0, *values]), max([0.0, *values])
    if hi - lo < 1e-12:
        lo, hi = -1.0, 1.0
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def padded(values: list[float]) -> tuple[float, float]:
    """An axis range holding ``values`` (not necessarily zero), padded by 8%."""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def ticks(lo: float, hi: float) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) between ``lo`` and ``hi``."""
    span = hi - lo
    step = 10 ** math.floor(math.log10(span / 4))
    for mult in (1, 2, 5, 10):
        if span / (step * mult) <= 6:
            step *= mult
            break
    start = math.ceil(lo / step)
    return [round(k * step, 12) for k in range(start, math.floor(hi / step) + 1)]


def tick_spec(values: list[float], percent: bool) -> str:
    """The format spec that shows ``values`` (evenly spaced ticks) with just enough digits."""
    step = abs(values[1] - values[0]) if len(values) > 1 else abs(values[0]) if values else 1.0
    if percent:
        decimals = max(0, -math.floor(math.log10(step * 100))) if step > 0 else 0
        return f"+.{decimals}%"
    if step > 0 and (step < 1e-3 or step >= 1e5):
        return ".1e"
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f".{decimals}f"


def bars(items: list[tuple[str, float, float, float, str, str, str]], *, percent: bool,
         signed: bool = True) -> dict[str, Any]:
    """Geometry of a horizontal bar chart with CI whiskers and a zero line."""
    width, label_w, value_w, row_h, top = 760, 260, 90, 26, 24
    plot_w = width - label_w - value_w
    lo, hi = scale([v for item in items for v in item[1:4]])

    def x(v: float) -> float:
        return round(label_w + (v - lo) / (hi - lo) * plot_w, 1)

    out = []
    for i, (label, value, ci_low, ci_high, verdict, role, text) in enumerate(items):
        y = top + i * row_h
        x0, x1 = sorted((x(0.0), x(value)))
        out.append({"label": label, "y": y, "mid": y + row_h / 2, "bar_x": x0,
                    "bar_w": max(round(x1 - x0, 1), 1.0), "ci_x1": x(ci_low), "ci_x2": x(ci_high),
                    "cls": verdict, "role": role, "text": text, "value_x": width - value_w + 8})
    spec = ("+" if signed else "") + (".0%" if percent else ".2g")
    marks = [{"x": x(t), "label": format(t, spec)}
             for t in ticks(lo, hi)]
    height = top + len(items) * row_h + 28
    return {"width": width, "height": height, "bars": out, "zero_x": x(0.0), "top": top - 6,
            "bottom": height - 22, "ticks": marks, "row_h": row_h, "label_w": label_w}


def lines(series: list[dict[str, Any]], *, span: float, height: int, percent: bool, zero: bool,
          marks: list[tuple[float, str]], y_label: str, legend: bool = True,
          start: float = 0.0, x_name: str = "step") -> dict[str, Any]:
    """Geometry of a line chart over optimiser steps (x from ``start`` to ``span``; another
    x, such as the merging weight, with ``x_name``: its ticks are then not only integers)."""
    left, right, top, bottom = 64, WIDTH - 16, 30, height - 30
    values = [v for s in series for _, v in s["data"] if math.isfinite(v)]
    lo, hi = scale(values) if zero else padded(values)
    width = (span - start) or 1.0

    def x(step: float) -> float:
        return round(left + (step - start) / width * (right - left), 1)

    def y(v: float) -> float:
        return round(bottom - (v - lo) / (hi - lo) * (bottom - top), 1)

    out = []
    for s in series:
        path, pen_down, points = [], False, []
        for step, v in s["data"]:
            if not math.isfinite(v):
                pen_down = False  # a gap where the loss was NaN/inf
                continue
            path.append(f"{'L' if pen_down else 'M'}{x(step)} {y(v)}")
            pen_down = True
            if s["dots"]:
                text = format(v, "+.1%") if percent else format(v, ".4g")
                points.append({"x": x(step), "y": y(v), "step": step, "r": 3.5,
                               "cls": f"pt {s['cls']}",
                               "title": f"{x_name} {step:g}: {s['name']} {text}"})
        out.append({"name": s["name"], "cls": s["cls"], "path": " ".join(path), "points": points})
    x_ticks = [t for t in ticks(start, float(span)) if t == int(t) or x_name != "step"]
    y_ticks = ticks(lo, hi)
    y_spec = tick_spec(y_ticks, percent)
    return {
        "width": WIDTH, "height": height, "left": left, "right": right, "top": top,
        "bottom": bottom, "y_label": y_label,
        "x_name": x_name,
        "x_ticks": [{"x": x(t), "label": f"{t:g}"} for t in x_ticks],
        "y_ticks": [{"y": y(t), "label": format(t, y_spec)} for t in y_ticks],
        "series": out,
        "zero_y": y(0.0) if zero and lo < 0 < hi else None,
        "marks": [{"x": x(step), "step": step, "label": label, "anchor": "end" if x(step) > right - 120 else "start"}
                  for step, label in marks if start <= step <= span],
        "legend": [{"name": s["name"], "cls": s["cls"], "dot": bool(s["points"])} for s in out]
        if legend else [],
    }


def mark_points(chart: dict[str, Any], failing: dict[float, list[str]],
                chosen: float | None) -> dict[str, Any]:
    """Hollow red points where the gate fails (``failing``: x -> why), a larger one at the
    chosen x, and the legend laid out."""
    for s in chart["series"]:
        for pt in s["points"]:
            if pt["step"] in failing:
                why = failing[pt["step"]]
                pt["cls"] += " fail"
                pt["title"] += "; gate FAILS" + (": " + "; ".join(why) if why else "")
            if pt["step"] == chosen:
                pt["cls"] += " chosen"
                pt["r"] = 5.5
    if failing:
        chart["legend"].append({"name": "fails the gate", "cls": "fail", "dot": True})
    return place_legend(chart)


def place_legend(chart: dict[str, Any]) -> dict[str, Any]:
    """Lay the legend out in one row above the plot, right-aligned (no overlap with data)."""
    x = chart["right"]
    for item in reversed(chart["legend"]):
        x -= 34 + round(6.6 * len(item["name"]))
        item["x"] = x
    return chart
