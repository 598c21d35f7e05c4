"""Scheduling the HF backend's scoring: which units share a row or a context, in what order
and in which batches they run, and retrying a batch that ran out of memory.

Like lm-eval, units whose inputs are identical (e.g. the one-token choices of a question)
share one row; multi-token choices sharing a context share one row, the context written once
(:mod:`ftguard.models.hf_shared_context`). Rows run longest first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ftguard.models.base import Progress
from ftguard.models.hf_batching import batches, longest_first
from ftguard.models.hf_encode import Unit
from ftguard.models.hf_forward import Score, Scored
from ftguard.models.hf_shared_context import (
    agrees_with_rows,
    context_groups,
    rows_per_batch,
    supports_tree,
    tree_row,
)

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
    """Score each group in one shared row; returns the units left to the plain path (all,
    where the model cannot take a shared row)."""
    if not groups:
        return []
    rows = [tree_row(unique, g) for g in groups]
    lengths = [row.length for row in rows]
    if not supports_tree(backend.model, max(lengths)):
        return [i for g in groups for i in g]
    order = longest_first(lengths)
    keeps = [row.keep for row in rows]
    while order:
        size = rows_per_batch(lengths[order[0]], backend.batch_size)
        batch = next(batches(order, keeps, batch_size=size, vocab_size=backend.vocab_size))
        scored = backend._shrinking_on_oom(len(batch), backend._forward_tree, unique,
                                           [groups[g] for g in batch],
                                           [rows[g] for g in batch])
        if scored is None:
            continue
        if not backend.tree_checked and not _check_tree(backend, unique,
                                                        groups[batch[0]], scored):
            return [i for g in order for i in groups[g]]
        order = order[len(batch):]
        finish(scored)
    return []


def _check_tree(backend: HFBackend, unique: list[Unit], group: list[int],
                scored: list[Scored]) -> bool:
    """Once per backend: do a group's shared-row scores equal its plain rows' scores? If
    not, the model does not honour the 4D mask and sharing is turned off, with a warning."""
    members = set(group)
    mine = [s for s in scored if s[0] in members]
    plain = backend._forward(unique, [[i] for i in group])
    backend.tree_checked = True
    dtype = backend.model.get_input_embeddings().weight.dtype
    if agrees_with_rows(mine, plain, dtype):
        return True
    backend.share_contexts = False
    print(f"ftguard: warning: {backend.info.spec} does not apply custom attention masks as "
          "expected; scoring every choice in a row of its own (slower, same results).",
          file=sys.stderr)
    return False


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
