"""What instruction-following tasks add to the records: per sample which instructions were
followed, per task and per instruction type how often, and base vs tuned per type."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class InstructionResult(_Model):
    """One instruction of one sample."""

    id: str
    """IFEval instruction id (``detectable_format:title``)."""
    strict: bool
    """Followed by the response as it is."""
    loose: bool
    """Followed by the response or one of its loose variants (first/last line, ``*`` removed)."""


class InstructionTypeResult(_Model):
    """How often one instruction type was followed in a task."""

    n: int
    """Instructions of this type over the task's samples."""
    strict: float
    """Share followed strictly (0-1)."""
    loose: float
    """Share followed loosely (0-1)."""


class InstructionTypeChange(_Model):
    """One instruction type of one task, base vs tuned (descriptive: no test per type)."""

    suite: str
    """Suite name."""
    task: str
    """Task name."""
    type: str
    """IFEval instruction id."""
    n: int
    """Instructions of this type over the items both runs scored."""
    base_strict: float
    """Base model's strict share."""
    tuned_strict: float
    """Tuned model's strict share."""
    base_loose: float
    """Base model's loose share."""
    tuned_loose: float
    """Tuned model's loose share."""


def instruction_results(followed: Iterable[tuple[str, bool, bool]] | None
                        ) -> list[InstructionResult] | None:
    """A sample's ``(id, strict, loose)`` triples as record entries (None stays None)."""
    if followed is None:
        return None
    return [InstructionResult(id=i, strict=strict, loose=loose) for i, strict, loose in followed]


def by_type(results: Iterable[list[InstructionResult] | None]
            ) -> dict[str, InstructionTypeResult] | None:
    """Per instruction type, sorted by id: its count and strict / loose shares; None when no
    sample carries instructions."""
    tally: dict[str, list[int]] = {}
    for sample in results:
        for r in sample or ():
            counts = tally.setdefault(r.id, [0, 0, 0])
            counts[0] += 1
            counts[1] += r.strict
            counts[2] += r.loose
    if not tally:
        return None
    return {key: InstructionTypeResult(n=n, strict=s / n, loose=lo / n)
            for key, (n, s, lo) in sorted(tally.items())}
