"""The report's Training section: what ``ftguard train`` did to produce the candidate.

``find_train_record`` locates the ``train_record.json`` an evaluated model came from (the
adapter or model folder sits in the training output folder); ``training_context`` turns a
TrainRecord into what ``_training.html.j2`` draws: loss, learning-rate and per-checkpoint
gain/alignment-tax curves as inline SVG, the checkpoint table with the chosen one highlighted,
and a summary of the run. Every string in the record is untrusted; the template escapes it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftguard.errors import RecordError
from ftguard.record import ModelInfo
from ftguard.train.record import TRAIN_RECORD, CheckpointEval, TrainRecord, read_train_record

MAX_CURVE_POINTS = 2000
"""Points drawn per loss / learning-rate curve; longer logs are thinned evenly."""

_WIDTH = 760


# -- finding the record -----------------------------------------------------------------------


def find_train_record(info: ModelInfo) -> Path | None:
    """The train_record.json that produced ``info``'s adapter (else its model folder), or None.

    Looks in the folder's parent (``OUT/adapter`` -> ``OUT/train_record.json``) and in the
    folder itself. A record in the parent counts only when its exported output is that folder
    (or has its name: the output folder may have moved). Missing, unreadable or invalid
    records give None: a report never fails because of a file it was not asked to read.
    """
    found = _discover(info)
    return found[0] if found else None


def discover_train_record(info: ModelInfo) -> TrainRecord | None:
    """The TrainRecord ``find_train_record`` finds, read; None when there is none."""
    found = _discover(info)
    return found[1] if found else None


def _discover(info: ModelInfo) -> tuple[Path, TrainRecord] | None:
    for folder_text in (info.adapter, info.path):
        if not folder_text:
            continue
        folder = Path(folder_text)
        for candidate, beside in ((folder.parent / TRAIN_RECORD, True), (folder / TRAIN_RECORD, False)):
            record = _try_read(candidate)
            if record is not None and (not beside or _exported_to(record, candidate.parent, folder)):
                return candidate, record
    return None


def _try_read(path: Path) -> TrainRecord | None:
    try:
        if not path.is_file():
            return None
        return read_train_record(path)
    except (RecordError, OSError, ValueError):
        return None


def _exported_to(record: TrainRecord, out: Path, folder: Path) -> bool:
    """Whether ``folder`` is the output (or a checkpoint) this record's run wrote into ``out``."""
    exported = [record.output] + [c.checkpoint for c in record.checkpoints]
    if record.output is None:
        return True
    for rel in filter(None, exported):
        try:
            if (out / rel).resolve() == folder.resolve():
                return True
        except (OSError, RuntimeError):
            pass
    return Path(record.output).name == folder.name


def is_train_record_file(path: Path) -> bool:
    """Whether ``ftguard report PATH`` should read PATH as a TrainRecord: a training output
    folder, a file named train_record.json, or JSON holding ``planned_steps``."""
    path = Path(path)
    if path.is_dir():
        return (path / TRAIN_RECORD).is_file()
    if path.name == TRAIN_RECORD:
        return True
    if not path.is_file():
        return False  # the generic reader reports the problem
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False  # the generic reader reports the problem
    return isinstance(data, dict) and "planned_steps" in data


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
    return _place_legend(_lines([s for s in series if _finite(s["data"])], span=span, height=260,
                                percent=False, zero=False, marks=marks, y_label="loss"))


def _lr_chart(r: TrainRecord, span: int) -> dict[str, Any] | None:
    lr = _thin([(p.step, p.lr) for p in r.log])
    if not _finite(lr):
        return None
    return _lines([{"name": "learning rate", "cls": "lr", "data": lr, "dots": False}], span=span,
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
    chart = _lines(series, span=span, height=280, percent=True, zero=True, marks=marks,
                   y_label="relative change vs base")
    return _mark_points(chart, {step: c.gate_failures for step, c in failing.items()}, chosen)


def _mark_points(chart: dict[str, Any], failing: dict[float, list[str]],
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
    return _place_legend(chart)


def _lines(series: list[dict[str, Any]], *, span: float, height: int, percent: bool, zero: bool,
           marks: list[tuple[float, str]], y_label: str, legend: bool = True,
           start: float = 0.0, x_name: str = "step") -> dict[str, Any]:
    """Geometry of a line chart over optimiser steps (x from ``start`` to ``span``; another
    x, such as the merging weight, with ``x_name``: its ticks are then not only integers)."""
    from ftguard.report.render import _scale, _ticks  # render imports this module lazily

    left, right, top, bottom = 64, _WIDTH - 16, 30, height - 30
    values = [v for s in series for _, v in s["data"] if math.isfinite(v)]
    lo, hi = _scale(values) if zero else _padded(values)
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
    x_ticks = [t for t in _ticks(start, float(span)) if t == int(t) or x_name != "step"]
    y_ticks = _ticks(lo, hi)
    y_spec = _tick_spec(y_ticks, percent)
    return {
        "width": _WIDTH, "height": height, "left": left, "right": right, "top": top,
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


def _place_legend(chart: dict[str, Any]) -> dict[str, Any]:
    """Lay the legend out in one row above the plot, right-aligned (no overlap with data)."""
    x = chart["right"]
    for item in reversed(chart["legend"]):
        x -= 34 + round(6.6 * len(item["name"]))
        item["x"] = x
    return chart


def _padded(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def _tick_spec(ticks: list[float], percent: bool) -> str:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(ticks[0]) if ticks else 1.0
    if percent:
        decimals = max(0, -math.floor(math.log10(step * 100))) if step > 0 else 0
        return f"+.{decimals}%"
    if step > 0 and (step < 1e-3 or step >= 1e5):
        return ".1e"
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f".{decimals}f"


def _finite(data: Sequence[tuple[int, float]]) -> bool:
    return any(math.isfinite(v) for _, v in data)


def _thin(data: list[tuple[int, float]]) -> list[tuple[int, float]]:
    if len(data) <= MAX_CURVE_POINTS:
        return data
    every = math.ceil(len(data) / MAX_CURVE_POINTS)
    return data[::every] + ([data[-1]] if (len(data) - 1) % every else [])
