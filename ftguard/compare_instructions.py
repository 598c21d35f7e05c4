"""Base vs tuned per instruction type, for instruction-following tasks: the share of each
type's instructions followed (strict and loose) on the items both runs scored. Descriptive;
the paired tests run on the task's four metrics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from ftguard.record import SampleResult, TaskResult
from ftguard.record.instructions import InstructionTypeChange, by_type


class _Paired(Protocol):
    suite: str
    base: TaskResult
    base_samples: list[SampleResult]
    tuned_samples: list[SampleResult]


def type_changes(pairs: Iterable[_Paired]) -> list[InstructionTypeChange]:
    """One entry per (task, instruction type) of the paired tasks whose samples carry
    instructions, sorted by suite, task and type."""
    out = []
    for pair in pairs:
        base = by_type(s.instructions for s in pair.base_samples)
        tuned = by_type(s.instructions for s in pair.tuned_samples)
        if base is None or tuned is None:
            continue
        for key in base.keys() & tuned.keys():
            b, t = base[key], tuned[key]
            out.append(InstructionTypeChange(
                suite=pair.suite, task=pair.base.name, type=key, n=b.n, base_strict=b.strict,
                tuned_strict=t.strict, base_loose=b.loose, tuned_loose=t.loose))
    return sorted(out, key=lambda c: (c.suite, c.task, c.type))
