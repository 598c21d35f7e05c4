"""The record of a merging-weight sweep (``sweep.json``) and the grid it runs over."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ftguard.errors import UsageError
from ftguard.record import (
    SCHEMA_VERSION,
    ModelInfo,
    RecordModel,
    load_json,
    validation_error,
    write_json_atomic,
)

MAX_POINTS = 50
"""Most merging weights one sweep evaluates."""


def parse_sweep(text: str) -> tuple[float, ...]:
    """``--sweep lambda=START:STOP:STEP`` (STOP included) or ``lambda=A,B,C``: the merging
    weights to evaluate, sorted, each once."""
    key, sep, values = text.partition("=")
    hint = "Write --sweep lambda=0.2:1.0:0.2 (start:stop:step, stop included) or " \
           "--sweep lambda=0.3,0.5,1."
    if not sep or key.strip().lower() not in ("lambda", "λ"):
        raise UsageError(f"--sweep {text}: sweeps the merging weight: 'lambda=...'.", hint=hint)
    try:
        if ":" in values:
            start, stop, step = (float(v) for v in values.split(":"))
            if not step > 0 or stop < start:
                raise UsageError(f"--sweep {text}: the step must be positive and the stop "
                                 "at least the start.", hint=hint)
            count = math.floor((stop - start) / step + 1e-9) + 1
            if count > MAX_POINTS:
                raise UsageError(f"--sweep {text}: {count} merging weights; at most "
                                 f"{MAX_POINTS} per sweep.", hint="Use a larger step.")
            grid = [round(start + i * step, 10) for i in range(count)]
        else:
            grid = [float(v) for v in values.split(",")]
    except ValueError:
        raise UsageError(f"--sweep {text}: '{values}' is not a list of numbers.",
                         hint=hint) from None
    if not grid or not all(math.isfinite(v) for v in grid):
        raise UsageError(f"--sweep {text}: give finite numbers.", hint=hint)
    if len(grid) > MAX_POINTS:
        raise UsageError(f"--sweep {text}: {len(grid)} merging weights; at most {MAX_POINTS}.")
    return tuple(sorted(set(grid)))


class SweepPoint(RecordModel):
    """One merging weight evaluated against the base."""

    lam: float
    """The merging weight λ."""
    stage: Literal["subset", "full"]
    """``subset``: the sweep's sample of every task; ``full``: the whole suites."""
    run: str
    """Its RunRecord, relative to the records folder."""
    target_score: float | None = None
    """Mean headline of the target suites, oriented so that higher is better."""
    gain: float | None = None
    """Mean relative change of the target suites' headlines vs the base (+ = better)."""
    gain_ci: tuple[float, float] | None = None
    """95% confidence interval of ``gain``."""
    alignment_tax: float | None = None
    """Mean relative change of the general suites' headlines vs the base (- = ability lost)."""
    tax_ci: tuple[float, float] | None = None
    """95% confidence interval of ``alignment_tax``."""
    gate_passed: bool
    """Whether the general-capability gate passes (full stage: every gate rule)."""
    gate_failures: list[str] = Field(default_factory=list)
    """Why it fails, one line per broken rule."""
    seconds: float = 0.0
    """Time its merge, evaluation and comparison took (little when the caches answered)."""


class SweepRecord(RecordModel):
    """A sweep of the merging weight: every point, the choice and why."""

    schema_version: int = SCHEMA_VERSION
    """Version of this format."""
    base: ModelInfo
    """The base model."""
    models: list[str]
    """The merged fine-tunes (folders)."""
    method: str
    """Merge rule."""
    weights: list[float]
    """One weight per fine-tune."""
    density: float | None = None
    """ties/dare density."""
    seed: int | None = None
    """dare's seed."""
    lambdas: list[float]
    """The grid."""
    subset: dict[str, Any] = Field(default_factory=dict)
    """The sample evaluated at every λ: ``subset`` and ``task_subset`` as in a RunRecord."""
    points: list[SweepPoint] = Field(default_factory=list)
    """The subset stage, one point per λ."""
    full: list[SweepPoint] = Field(default_factory=list)
    """The full stage: the best passing λ of the subset stage (and the next when it fails)."""
    chosen: float | None = None
    """The λ written to the output folder (None when none passed)."""
    reason: str = ""
    """Why that λ (or why none)."""
    out: str | None = None
    """The merged model's folder, when one was written."""


def write_sweep(record: SweepRecord, path: Path) -> Path:
    return write_json_atomic(record.model_dump(mode="json"), path)


def read_sweep(path: Path) -> SweepRecord:
    from pydantic import ValidationError

    data = load_json(path, "sweep record", "ftguard merge --sweep")
    try:
        return SweepRecord.model_validate(data)
    except ValidationError as exc:
        raise validation_error(path, "sweep record", exc) from None
