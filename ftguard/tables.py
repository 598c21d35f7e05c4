"""Results tables of a RunRecord: text (terminal), markdown, JSON and CSV."""

from __future__ import annotations

import io
import json

from ftguard.models.naming import model_label
from ftguard.record import RunRecord

_HEADERS = ("suite", "task", "metric", "value", "95% CI", "n")


def result_rows(record: RunRecord, *, slice_headlines: bool = False) -> list[dict[str, object]]:
    """One row per (suite, task, metric), then per (slice, metric) of a sliced task (only
    each slice's headline with ``slice_headlines``)."""
    rows = []
    for suite in record.suites:
        for task in suite.tasks:
            groups = [(None, task.metrics), *(task.slices or {}).items()]
            for part, metrics in groups:
                items = list(metrics.items())
                for name, m in items[:1] if part and slice_headlines else items:
                    rows.append({"suite": suite.name, "task": task.name, "slice": part,
                                 "metric": name, "value": m.value, "ci_low": m.ci_low,
                                 "ci_high": m.ci_high, "n": m.n,
                                 "higher_is_better": m.higher_is_better})
    return rows


def _fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def _cells(row: dict[str, object]) -> list[str]:
    lo, hi = float(row["ci_low"]), float(row["ci_high"])  # type: ignore[arg-type]
    arrow = "↑" if row["higher_is_better"] else "↓"
    task = f"{row['task']}[{row['slice']}]" if row["slice"] else str(row["task"])
    return [str(row["suite"]), task, f"{row['metric']} {arrow}",
            _fmt(float(row["value"])), f"[{_fmt(lo)}, {_fmt(hi)}]", str(row["n"])]  # type: ignore[arg-type]


RESULT_FIELDS = ("suite", "task", "slice", "metric", "value", "ci_low", "ci_high", "n", "higher_is_better")
"""The columns of :func:`result_rows` (the keys of the JSON rows, the CSV header)."""


def render_results(record: RunRecord, fmt: str = "text") -> str:
    rows = result_rows(record, slice_headlines=fmt in ("text", "markdown"))
    if fmt == "csv":
        from ftguard.csv_table import csv_table

        return csv_table(RESULT_FIELDS, rows)
    if fmt == "json":
        return json.dumps({"model": record.model.model_dump(), "results": rows}, indent=1)
    if fmt == "markdown":
        lines = ["| " + " | ".join(_HEADERS) + " |", "|" + "---|" * len(_HEADERS)]
        lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
        return f"**{model_label(record.model)}** (`{record.model.fingerprint[:19]}`)\n\n" + \
            "\n".join(lines)
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{model_label(record.model)}  {record.model.fingerprint[:19]}",
                  title_justify="left")
    for header in _HEADERS:
        table.add_column(header, justify="right" if header in ("value", "n") else "left")
    for row in rows:
        table.add_row(*(Text(c) for c in _cells(row)))
    buffer = io.StringIO()
    Console(file=buffer, width=120, force_terminal=False).print(table)
    return buffer.getvalue().rstrip()
