"""Run settings: what applies to every task of a run, and where its progress goes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ftguard.models.base import Progress


class Reporter(Protocol):
    """Receives progress; the CLI draws a bar, the library default stays silent."""

    def start(self, label: str, total: int) -> Progress: ...

    def done(self, label: str) -> None: ...


class SilentReporter:
    def start(self, label: str, total: int) -> Progress:
        return lambda n: None

    def done(self, label: str) -> None:
        pass


@dataclass(frozen=True)
class RunSettings:
    """Evaluation settings that apply to every task."""

    limit: int | None = None
    """Score only the first N items of each task."""
    subset: int | float | None = None
    """Score a fixed random subset of each task, N items or a fraction 0 < F < 1 of them:
    the same items for the same task and seed, so runs of different models stay paired, and
    a smaller subset is part of a larger one."""
    task_subset: Mapping[str, int | float] = field(default_factory=dict)
    """Per-task overrides of ``subset``, keyed ``task`` or ``suite/task`` (e.g. a cheap
    scoring task in full, 1.0, beside sampled generation tasks)."""
    seed: int = 1234
    """Seed of bootstrap confidence intervals (and of torch)."""
    resamples: int = 1000
    """Bootstrap resamples for corpus metrics' confidence intervals."""
