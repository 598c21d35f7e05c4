"""Scheduling the HF backend's scoring: which units share a row or a context, in what order
and in which batches they run, and retrying a batch that ran out of memory.

Like lm-eval, units whose inputs are identical (e.g. the one-token choices of a question)
share one row; units sharing a long context are scored from one cached pass over it
(:mod:`ftguard.models.hf_shared_context`). Rows run longest first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ftguard.models.base import Progress
from ftguard.models.hf_batching import batches, longest_first
from ftguard.models.hf_encode import Unit
from ftguard.models.hf_forward import Score, Scored
from ftguard.models.hf_shared_context import NoSharedCache, context_groups

if TYPE_CHECKING:
    from ftguard.models.hf import HFBackend

Finish = Callable[[list[Scored]], None]
"""Takes the scores of a finished batch."""


def score_units(backend: HFBackend, units: list[Unit], progress: Progress | None, *,
                on_units: Callable[[list[int]], None] | None = None,
                share: bool = False) -> list[Score]:
    """Score every unit once (duplicates share a score); report finished units by their
    positions in ``units``. ``share`` lets units with a common context share its pass."""
    unique = list(dict.fromkeys(units))
    where = {unit: i for i, unit in enumerate(unique)}
    users: dict[int, list[int]] = {}
    for position, unit in enumerate(units):
        users.setdefault(where[unit], []).append(position)
    scores: list[Score] = [(0.0, False)] * len(unique)

    def finish(scored: list[Scored]) -> None:
        for i, score in scored:
            scores[i] = score
        done = [p for i, _ in scored for p in users[i]]
        if progress:
            progress(len(done))
        if on_units:
            on_units(done)

    rest = list(range(len(unique)))
    if share and backend.share_contexts:
        groups, rest = context_groups(unique, rest)
        rest += _score_contexts(backend, unique, groups, finish)
    _score_rows(backend, unique, rest, finish)
    return [scores[where[unit]] for unit in units]


def _score_rows(backend: HFBackend, unique: list[Unit], indices: list[int],
                finish: Finish) -> None:
    # Units with the same input (every token but the last) share one row of one forward
    # pass, as in lm-eval's one-token-continuation cache: all the single-token choices of
    # a question are scored from a single row.
    shared: dict[tuple[int, ...], list[int]] = {}
    for i in indices:
        shared.setdefault(unique[i][0][:-1], []).append(i)
    rows = list(shared.values())
    order = longest_first([len(unique[row[0]][0]) for row in rows])
    keeps = [max(unique[i][1] for i in row) for row in rows]
    while order:
        batch = next(batches(order, keeps, batch_size=backend.batch_size,
                             vocab_size=backend.vocab_size))
        members = [rows[r] for r in batch]
        scored = backend._shrinking_on_oom(len(batch), backend._forward, unique, members)
        if scored is None:
            continue
        order = order[len(batch):]
        finish(scored)


def _score_contexts(backend: HFBackend, unique: list[Unit], groups: list[list[int]],
                    finish: Finish) -> list[int]:
    """Score each group from one pass over its context; returns units left unscored
    (all remaining ones, should the model's cache not allow reusing a context)."""
    order = longest_first([len(unique[g[0]][0]) - unique[g[0]][1] for g in groups])
    ones = [1] * len(groups)
    while order:
        batch = next(batches(order, ones, batch_size=backend.batch_size,
                             vocab_size=backend.vocab_size))
        try:
            scored = backend._shrinking_on_oom(len(batch), backend._forward_contexts, unique,
                                               [groups[g] for g in batch])
        except NoSharedCache:
            backend.share_contexts = False
            return [i for g in order for i in groups[g]]
        if scored is None:
            continue
        order = order[len(batch):]
        finish(scored)
    return []


def rolling_progress(owners: list[int], progress: Progress | None) -> Callable[[list[int]], None]:
    """Turns finished windows (by unit position; ``owners`` maps each to its request) into
    progress in finished requests."""
    remaining: dict[int, int] = {}
    for owner in owners:
        remaining[owner] = remaining.get(owner, 0) + 1

    def advance(done_units: list[int]) -> None:
        finished = 0
        for u in done_units:
            remaining[owners[u]] -= 1
            finished += remaining[owners[u]] == 0
        if progress and finished:
            progress(finished)

    return advance
