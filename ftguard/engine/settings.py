"""Run settings: what applies to every task of a run, and where its progress goes."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Protocol

from ftguard.models.base import Progress


class Reporter(Protocol):
    """Receives progress; the CLI draws a bar, the library default stays silent.

    ``start(label, total)`` opens a task of ``total`` items (samples, not model requests: a
    four-way choice item is one item, four loglikelihood requests); the Progress it returns
    is called with the number of items finished since the last call."""

    def start(self, label: str, total: int) -> Progress: ...

    def done(self, label: str) -> None: ...


class SilentReporter:
    def start(self, label: str, total: int) -> Progress:
        return lambda n: None

    def done(self, label: str) -> None:
        pass


class ItemProgress:
    """Backends report finished requests; the reporter counts items. ``per_item[i]`` is
    how many requests item ``i`` makes (its choices), in the order they are asked: after r
    requests, the items whose requests all lie within the first r are done (exact for a
    backend answering in order; one that reorders, e.g. by length, gets the same count of
    items' worth of requests)."""

    def __init__(self, progress: Progress, per_item: Sequence[int]) -> None:
        self.progress, self.ends = progress, list(accumulate(per_item))
        self.requests = self.items = 0

    def __call__(self, n: int) -> None:
        self.requests += n
        done = bisect_right(self.ends, self.requests)
        if done > self.items:
            self.progress(done - self.items)
            self.items = done


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
    tasks: tuple[str, ...] = ()
    """Evaluate only these tasks (``--tasks``): ``TASK`` (in every suite that has it),
    ``SUITE/TASK`` or a glob of either; suites left without a task are dropped (empty: every
    task, :mod:`ftguard.engine.tasks`)."""
    seed: int = 1234
    """Seed of bootstrap confidence intervals (and of torch)."""
    resamples: int = 1000
    """Bootstrap resamples for corpus metrics' confidence intervals."""
