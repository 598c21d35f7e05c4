"""The merge sweep section of a report: every merging weight's target gain and alignment
tax, as a table and a chart, with the chosen one and those failing the gate marked."""

from __future__ import annotations

from typing import Any

from ftguard.judge import signed_percent
from ftguard.merge.sweep_record import SweepPoint, SweepRecord
from ftguard.report.charts import lines, mark_points


def sweep_context(record: SweepRecord) -> dict[str, Any]:
    """What ``_sweep.html.j2`` needs."""
    return {"s": record, "chart": _chart(record.points, record.chosen),
            "rows": [_row(p, record.chosen) for p in [*record.points, *record.full]],
            "subset": _subset(record.subset)}


def _row(p: SweepPoint, chosen: float | None) -> dict[str, Any]:
    def pct(v: float | None) -> str:
        return signed_percent(v, "–")

    def ci(v: tuple[float, float] | None) -> str:
        return "" if v is None else f"[{v[0]:+.1%}, {v[1]:+.1%}]"

    return {"lam": f"{p.lam:g}", "stage": p.stage, "run": p.run,
            "gain": pct(p.gain), "gain_ci": ci(p.gain_ci), "tax": pct(p.alignment_tax),
            "tax_ci": ci(p.tax_ci), "gate": "pass" if p.gate_passed else "fail",
            "failures": p.gate_failures, "seconds": f"{p.seconds:.1f}",
            "chosen": p.lam == chosen and p.stage == "full"}


def _subset(subset: dict[str, Any]) -> str:
    default = subset.get("subset")
    text = "every item" if default is None else (
        f"{default:.0%} of each task" if isinstance(default, float)
        else f"{default} items per task")
    own = subset.get("task_subset") or {}
    return text + "".join(f", {k}: {v:g}" for k, v in own.items())


def _chart(points: list[SweepPoint], chosen: float | None) -> dict[str, Any] | None:
    series = [{"name": "target gain", "cls": "gain", "dots": True,
               "data": [(p.lam, p.gain) for p in points if p.gain is not None]},
              {"name": "alignment tax (general suites)", "cls": "forgetting", "dots": True,
               "data": [(p.lam, p.alignment_tax) for p in points if p.alignment_tax is not None]}]
    series = [s for s in series if s["data"]]
    if not series:
        return None
    lams = [p.lam for p in points]
    pad = (max(lams) - min(lams)) * 0.05 or 0.1
    marks = [(chosen, f"chosen: lambda {chosen:g}")] if chosen is not None else []
    chart = lines(series, start=min(lams) - pad, span=max(lams) + pad, height=280,
                  percent=True, zero=True, marks=marks, y_label="relative change vs base",
                  x_name="lambda")
    return mark_points(chart, {p.lam: p.gate_failures for p in points if not p.gate_passed},
                       chosen)
