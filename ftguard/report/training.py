"""The report's Training section: what ``ftguard train`` did to produce the candidate.

``training_context`` turns a TrainRecord into what ``_training.html.j2`` draws: loss,
learning-rate and per-checkpoint gain/alignment-tax curves as inline SVG, the checkpoint table
with the chosen one highlighted, and a summary of the run. Every string in the record is
untrusted; the template escapes it. (Finding the record beside an evaluated model is
``ftguard.train.record.discover_train_record``; the report reads no files.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ftguard.report.charts import lines, mark_points, place_legend
from ftguard.train.record import CheckpointEval, TrainRecord

MAX_CURVE_POINTS = 2000
"""Points drawn per loss / learning-rate curve; longer logs are thinned evenly."""


# -- context for the template -----------------------------------------------------------------


def training_context(record: TrainRecord, *, standalone: bool = False) -> dict[str, Any]:
    """What ``_training.html.j2`` needs to draw one training run."""
    chosen = record.best.step if record.best else None
    span = max([record.planned_steps, record.steps, 1]
               + [p.step for p in record.log] + [c.step for c in record.checkpoints])
    rows = [_checkpoint_row(c, chosen) for c in sorted(record.checkpoints, key=lambda c: c.step)]
    return {
        "t": record,
        "standalone": standalone,
        "chosen": chosen,
        "loss_chart": _loss_chart(record, span, chosen),
        "lr_chart": _lr_chart(record, span),
        "checkpoint_chart": _checkpoint_chart(record.checkpoints, span, chosen),
        "checkpoints": rows,
        "failing": [r["step"] for r in rows if r["gate"] == "fail"],
        "summary": _summary(record),
        "sources": _sources(record),
        "memory": _memory(record),
    }


def _checkpoint_row(c: CheckpointEval, chosen: int | None) -> dict[str, Any]:
    gate = "n/a" if c.gate_passed is None else "pass" if c.gate_passed else "fail"
    return {"step": c.step, "run": c.run, "checkpoint": c.checkpoint or "",
            "target_score": _fmt(c.target_score, ".4g"), "gain": _fmt(c.gain, "+.1%"),
            "alignment_tax": _fmt(c.alignment_tax, "+.1%"), "val_loss": _fmt(c.val_loss, ".4g"),
            "gate": gate, "failures": list(c.gate_failures), "chosen": c.step == chosen,
            "seconds": f"{c.seconds:.1f}", "headline": dict(c.headline)}


def _summary(r: TrainRecord) -> list[tuple[str, str]]:
    steps = f"{r.steps} of {r.planned_steps} planned"
    status = r.status + (f" ({r.stop_reason})" if r.stop_reason else "")
    share = r.trainable_params / max(r.total_params, 1)
    items = [("method", r.method), ("steps", steps), ("status", status),
             ("trainable parameters", f"{r.trainable_params:,} of {r.total_params:,} ({share:.2%})")]
    if r.tokens_per_second is not None:
        items.append(("throughput", f"{r.tokens_per_second:,.0f} tokens/s"))
    if r.peak_memory is not None:
        items.append(("peak memory", _bytes(r.peak_memory)))
    if r.timings:
        items.append(("timings", ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items())))
    if r.best:
        items.append(("chosen checkpoint", f"step {r.best.step} ({r.best.rule}): {r.best.reason}"))
    if r.output:
        items.append(("exported to", r.output))
    items += [("started", r.created), ("finished", r.finished or "not finished"),
              ("ftguard", r.ftguard_version)]
    return items


def _sources(r: TrainRecord) -> list[dict[str, Any]]:
    out = []
    for role, s in [("train", s) for s in r.data.sources] + (
            [("validation", r.data.validation)] if r.data.validation else []):
        ratio = "" if s.ratio is None else f"{s.ratio:.0%}"
        if s.final_ratio is not None and s.final_ratio != s.ratio:
            ratio += f" → {s.final_ratio:.0%}"
        out.append({"role": role, "name": s.name, "path": s.path, "format": s.format,
                    "rows": s.rows, "truncated": s.truncated, "dropped": s.dropped,
                    "tokens": s.tokens, "ratio": ratio, "sha": s.sha256[:12]})
    return out


def _memory(r: TrainRecord) -> str:
    m = r.memory_estimate
    parts = ", ".join(f"{k} {_bytes(getattr(m, k))}"
                      for k in ("weights", "gradients", "optimizer", "activations"))
    text = f"{_bytes(m.total)} on {m.device} ({parts})"
    if m.available is not None:
        text += f"; {_bytes(m.available)} free" + ("" if m.fits is None else
                                                   " — fits" if m.fits else " — does NOT fit")
    return text


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} GiB"  # pragma: no cover


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None or not math.isfinite(value) else format(value, spec)


# -- line charts ------------------------------------------------------------------------------


def _loss_chart(r: TrainRecord, span: int, chosen: int | None) -> dict[str, Any] | None:
    train = _thin([(p.step, p.loss) for p in r.log])
    val = [(p.step, p.loss) for p in r.validation]
    if not _finite(train) and not _finite(val):
        return None
    series = [{"name": "training loss", "cls": "train", "data": train, "dots": False},
              {"name": "validation loss", "cls": "val", "data": val, "dots": True}]
    marks = [(chosen, f"chosen: step {chosen}")] if chosen is not None else []
    return place_legend(lines([s for s in series if _finite(s["data"])], span=span, height=260,
                               percent=False, zero=False, marks=marks, y_label="loss"))


def _lr_chart(r: TrainRecord, span: int) -> dict[str, Any] | None:
    lr = _thin([(p.step, p.lr) for p in r.log])
    if not _finite(lr):
        return None
    return lines([{"name": "learning rate", "cls": "lr", "data": lr, "dots": False}], span=span,
                 height=150, percent=False, zero=True, marks=[], y_label="learning rate",
                 legend=False)


def _checkpoint_chart(checkpoints: Sequence[CheckpointEval], span: int,
                      chosen: int | None) -> dict[str, Any] | None:
    cps = sorted(checkpoints, key=lambda c: c.step)
    failing = {c.step: c for c in cps if c.gate_passed is False}
    series = [{"name": "gain (target suites)", "cls": "gain", "dots": True,
               "data": [(c.step, c.gain) for c in cps if c.gain is not None]},
              {"name": "alignment tax (general suites)", "cls": "forgetting", "dots": True,
               "data": [(c.step, c.alignment_tax) for c in cps if c.alignment_tax is not None]}]
    series = [s for s in series if _finite(s["data"])]
    if not series:
        return None
    marks = [(chosen, f"chosen: step {chosen}")] if chosen is not None else []
    chart = lines(series, span=span, height=280, percent=True, zero=True, marks=marks,
                  y_label="relative change vs base")
    return mark_points(chart, {step: c.gate_failures for step, c in failing.items()}, chosen)


def _finite(data: Sequence[tuple[int, float]]) -> bool:
    return any(math.isfinite(v) for _, v in data)


def _thin(data: list[tuple[int, float]]) -> list[tuple[int, float]]:
    if len(data) <= MAX_CURVE_POINTS:
        return data
    every = math.ceil(len(data) / MAX_CURVE_POINTS)
    return data[::every] + ([data[-1]] if (len(data) - 1) % every else [])
