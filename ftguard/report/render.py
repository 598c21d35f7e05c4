"""Render a Comparison, a RunRecord or a TrainRecord as one self-contained HTML file.

Everything is inline (CSS, an SVG chart drawn here, a few lines of JavaScript for the flips
filter); the page makes no network request. Model outputs and prompts are untrusted: jinja2
autoescapes every value, and the JSON data island is escaped so ``</script>`` in a prediction
cannot close it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from ftguard.atomic import write_text_atomic
from ftguard.errors import UsageError
from ftguard.gate import format_ci
from ftguard.record import AggregateChange, Comparison, ComparisonRow, RunRecord
from ftguard.report.charts import bars
from ftguard.version import ftguard_version

if TYPE_CHECKING:
    from ftguard.merge.sweep_record import SweepRecord
    from ftguard.train.record import TrainRecord

SHOWN_FLIPS = 500
"""Flips rendered into the page's DOM; the filter searches all of them through the data island."""
SHOWN_SAMPLES = 50
"""Samples listed per task for a RunRecord."""

_TEMPLATES = Path(__file__).parent / "templates"


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(_TEMPLATES),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["text"] = _text
    env.filters["pct"] = lambda v: f"{v:+.1%}"
    env.filters["num"] = lambda v: f"{v:.4g}"
    env.filters["signed"] = lambda v: f"{v:+.4g}"
    env.filters["ci"] = lambda r: format_ci(r.ci_low, r.ci_high)
    env.filters["prefix"] = lambda text, head: f"{head}{text}"
    return env


_TRAIN_PAGE = ('{% extends "base.html.j2" %}{% block body %}'
               '{% include "_training.html.j2" %}{% endblock %}')


def render_report(obj: Comparison | RunRecord | TrainRecord, train: TrainRecord | None = None,
                  sweep: SweepRecord | None = None) -> str:
    """The HTML report of a Comparison (gate report), a RunRecord (results report) or a
    TrainRecord (training report).

    A Comparison gets a Training section from ``train`` and a Merge sweep section from
    ``sweep``. Nothing is read from disk: the caller finds the train record (for example
    ``ftguard.train.record.discover_train_record(comparison.tuned)``) and passes it.
    """
    # lazy: ftguard.train may pull in training code that a gate report never needs
    from ftguard.report.training import training_context
    from ftguard.train.record import TrainRecord

    if train is not None and not isinstance(obj, Comparison):
        raise UsageError(f"a train record (--train) goes with a Comparison, not a "
                         f"{type(obj).__name__}.", hint="Render the train record on its own.")
    if sweep is not None and not isinstance(obj, Comparison):
        raise TypeError("a sweep record goes with a Comparison")
    if isinstance(obj, TrainRecord):
        return _env().from_string(_TRAIN_PAGE).render(
            title=f"Training — {obj.method} of {obj.base.spec}", renderer_version=ftguard_version(),
            train=training_context(obj, standalone=True))
    if isinstance(obj, Comparison):
        from ftguard.report.sweep import sweep_context

        return _env().get_template("comparison.html.j2").render(
            **_comparison_context(obj), train=training_context(train) if train else None,
            sweep=sweep_context(sweep) if sweep else None)
    if isinstance(obj, RunRecord):
        return _env().get_template("run.html.j2").render(**_run_context(obj))
    raise TypeError("render_report takes a Comparison, a RunRecord or a TrainRecord, "
                    f"not {type(obj).__name__}")


def write_report(obj: Comparison | RunRecord | TrainRecord, path: Path | str,
                 train: TrainRecord | None = None, sweep: SweepRecord | None = None) -> Path:
    """Render ``obj`` (with ``train`` and ``sweep``, see ``render_report``) and write it to
    ``path`` atomically; return the path."""
    return write_text_atomic(render_report(obj, train=train, sweep=sweep), Path(path))


def json_island(data: Any) -> Markup:
    """JSON safe to place inside ``<script type="application/json">``: no ``<``, ``>``, ``&``
    or line separators appear literally, so nothing in the data can close the element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return Markup(text)  # escaped above for the script-data context


def _text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else " | ".join(map(str, value))  # type: ignore[call-overload]


# -- comparison -----------------------------------------------------------------------------


def _comparison_context(c: Comparison) -> dict[str, Any]:
    own = [r for r in c.rows if r.slice is None]  # slice rows: their own tables
    headline = [r for r in own if r.headline] or own
    flips = [{"suite": f.suite, "task": f.task, "id": f.id, "direction": f.direction,
              "target": _text(f.target), "base": f.base_prediction, "tuned": f.tuned_prediction,
              "base_raw": f.base_raw_prediction, "tuned_raw": f.tuned_raw_prediction,
              "prompt": f.prompt or ""} for f in c.flips]
    general = [r for r in headline if r.role == "general"]
    from ftguard.compare_output import verdict_word
    from ftguard.report.reliability import comparison_charts

    return {
        "c": c,
        "verdict": verdict_word(c),
        "weak_rules": [o.rule for o in c.gate if o.outcome in ("unchecked", "underpowered")],
        "title": f"{'PASS' if c.passed else 'FAIL'} — {c.tuned.spec} vs {c.base.spec}",
        "version": c.ftguard_version or ftguard_version(),
        "renderer_version": ftguard_version(),
        "aggregates": _aggregate_chart(c),
        "deltas": _delta_chart(headline),
        "general_rows": general,
        "flips_shown": flips[:SHOWN_FLIPS],
        "flips_total": len(flips),
        "c2w": sum(f["direction"] == "correct_to_wrong" for f in flips),
        "w2c": sum(f["direction"] == "wrong_to_correct" for f in flips),
        "flips_json": json_island(flips),
        "shown_limit": SHOWN_FLIPS,
        "reliability_charts": comparison_charts(c),
        "own_rows": own,
        "slice_tables": [{"suite": s, "task": t, "rows": [r for r in c.rows if r.slice and (
            r.suite, r.task) == (s, t)]} for s, t in dict.fromkeys(
                (r.suite, r.task) for r in c.rows if r.slice)],
    }


def _aggregate_chart(c: Comparison) -> dict[str, Any] | None:
    """Gain vs alignment tax (mean relative change) with CIs, as horizontal bars."""
    items: list[tuple[str, AggregateChange, str]] = []
    if c.gain is not None:
        items.append(("gain (target suites)", c.gain, "target"))
    if c.alignment_tax is not None:
        items.append(("alignment tax (general suites)", c.alignment_tax, "general"))
    if len(c.forgetting) > 1:
        items += [(f"forgetting: {s}", a, "general") for s, a in c.forgetting.items()]
    if not items:
        return None
    return bars([(label, a.value, a.value if a.ci_low is None else a.ci_low,
                   a.value if a.ci_high is None else a.ci_high, _agg_class(a), kind,
                   f"{a.value:+.1%}" + ("" if a.ci_low is not None else " (CI unbounded)"))
                  for label, a, kind in items], percent=True)


def _agg_class(a: AggregateChange) -> str:
    if a.ci_low is None or a.ci_high is None:
        return "unchanged"
    if a.ci_low > 0:
        return "improved"
    if a.ci_high < 0:
        return "regressed"
    return "unchanged"


def _delta_chart(rows: list[ComparisonRow]) -> dict[str, Any] | None:
    rows = [r for r in rows if r.comparable]
    if not rows:
        return None
    items = []
    for r in rows:
        sign = 1.0 if r.higher_is_better else -1.0  # drawn so that right = better
        # an unbounded end (too few items) is drawn to the edge of the other rows' scale
        span = max([abs(v) for q in rows for v in (q.delta, q.ci_low, q.ci_high)
                    if v is not None] + [1e-9])
        low = r.ci_low if r.ci_low is not None else r.delta - 2 * span
        high = r.ci_high if r.ci_high is not None else r.delta + 2 * span
        lo, hi = sorted((sign * low, sign * high))
        mark = "**" if (r.p_adjusted or 1.0) < 0.01 else "*" if r.verdict in (
            "improved", "regressed") else ""
        label = f"{r.suite}/{r.task} {r.metric}" + ("" if r.higher_is_better else " (lower=better)")
        items.append((label, sign * r.delta, lo, hi, r.verdict, r.role, f"{r.delta:+.4g}{mark}"))
    return bars(items, percent=False)


# -- run record -----------------------------------------------------------------------------


def _run_context(r: RunRecord) -> dict[str, Any]:
    from ftguard.report.reliability import reliability_charts

    tasks = []
    for suite in r.suites:
        for task in suite.tasks:
            tasks.append({"suite": suite.name, "role": suite.role, "task": task,
                          "samples": task.samples[:SHOWN_SAMPLES],
                          "more": max(len(task.samples) - SHOWN_SAMPLES, 0)})
    items = []
    for t in tasks:
        for name, m in t["task"].metrics.items():
            items.append((f"{t['suite']}/{t['task'].name} {name}", m.value, m.ci_low, m.ci_high,
                          t["role"], t["role"], f"{m.value:.4g}"))
    return {"r": r, "title": f"{r.model.spec} — ftguard results", "tasks": tasks,
            "version": r.ftguard_version or ftguard_version(), "renderer_version": ftguard_version(),
            "metrics_chart": bars(items, percent=False, signed=False) if items else None,
            "shown_samples": SHOWN_SAMPLES, "reliability_charts": reliability_charts(r)}
