"""Slice rows of a comparison: base vs tuned on each slice's items (:mod:`ftguard.slices`).

Each slice ``FIELD=VALUE`` that both runs recorded gets a row per metric, paired item by item
on the slice's items with the test its metric calls for (the task's own :func:`_row`). Their
p-values are adjusted within the task's slices, one family per (suite, task, metric), apart
from the task-level families: slice rows never dilute nor enter the headline rows' correction,
nor the aggregates (alignment tax, gain, forgetting). A slice only one run has is said so in
the notes, and every rule that selects it is ``unchecked`` (never a pass).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ftguard.gate import Gateable, Policy, SkippedCheck
from ftguard.record import ComparisonRow, RunRecord
from ftguard.stats import benjamini_hochberg, holm

MakeRow = Callable[[Any, str, bool], ComparisonRow]
"""``(pair, metric, headline) -> row``: compare's own row of one paired task and metric."""


def slice_rows(pairs: list[Any], make_row: MakeRow, policy: Policy) -> list[ComparisonRow]:
    """One row per (slice both runs have, metric both have) of every paired task, adjusted
    and judged within its task's slices (:func:`adjust_slices`)."""
    rows: list[ComparisonRow] = []
    for pair in pairs:
        base, tuned = pair.base.slices or {}, pair.tuned.slices or {}
        for name in (n for n in base if n in tuned):
            kept = [(b, t) for b, t in zip(pair.base_samples, pair.tuned_samples)
                    if name in b.slices]
            if not kept:  # --allow-mismatch left none of its items in both runs
                continue
            sub = replace(pair, base=pair.base.model_copy(update={"metrics": base[name]}),
                          tuned=pair.tuned.model_copy(update={"metrics": tuned[name]}),
                          base_samples=[b for b, _ in kept], tuned_samples=[t for _, t in kept])
            for position, metric in enumerate(base[name]):
                if metric in tuned[name]:
                    row = make_row(sub, metric, position == 0)
                    rows.append(row.model_copy(update={"slice": name}))
    adjust_slices(rows, policy)
    return rows


def adjust_slices(rows: list[ComparisonRow], policy: Policy) -> None:
    """Adjust the slice rows' p-values within each (suite, task, metric) and set verdicts."""
    adjust = holm if policy.correction == "holm" else benjamini_hochberg
    families: dict[tuple[str, str, str], list[ComparisonRow]] = {}
    for row in rows:
        if row.slice is not None and row.comparable:
            families.setdefault((row.suite, row.task, row.metric), []).append(row)
    for family in families.values():
        for row, p in zip(family, adjust([float(r.p_value) for r in family])):  # type: ignore[arg-type]
            row.p_adjusted = float(p)
            better = row.delta > 0 if row.higher_is_better else row.delta < 0
            if row.p_adjusted < policy.alpha and row.delta != 0:
                row.verdict = "improved" if better else "regressed"


def one_sided(pairs: list[Any], notes: list[str]) -> list[SkippedCheck]:
    """The slices only one run recorded: an unchecked check each, and a note per task (added
    to ``notes``)."""
    checks: list[SkippedCheck] = []
    for pair in pairs:
        base, tuned = pair.base.slices or {}, pair.tuned.slices or {}
        only = [(n, "tuned", tuned, base) for n in tuned if n not in base] + [
            (n, "base", base, tuned) for n in base if n not in tuned]
        for name, where, own, other in only:
            why = f"slice only in the {where} run" + (
                "" if other else " (the other run recorded no slices: re-evaluate it with an "
                                 "ftguard that slices tasks)")
            checks.append(SkippedCheck(pair.suite, pair.role, pair.base.name, tuple(own[name]),
                                       why, slice=name))
        if only:
            notes.append(f"{pair.suite}/{pair.base.name}: {len(only)} slice(s) in one run only, "
                         f"not compared ({', '.join(n for n, *_ in only[:6])}"
                         f"{' ...' if len(only) > 6 else ''})")
    return checks


def with_slice_names(universe: list[Gateable], pairs: list[Any], *runs: RunRecord
                     ) -> list[Gateable]:
    """``universe`` with each paired task's slices of both runs (a rule may select a slice
    one run lacks: it is then unchecked, not a selector error). When a run evaluated only
    some items (``--limit``, ``--subset``) a slice may have none there: a slice rule that
    selects no slice is then unchecked too, not an error."""
    names = {(p.suite, p.base.name): tuple(dict.fromkeys([*(p.base.slices or {}),
                                                          *(p.tuned.slices or {})]))
             for p in pairs}
    partial = any(r.config.limit is not None or r.config.subset is not None
                  or r.config.task_subset for r in runs)
    return [replace(g, slices=names.get((g.suite, g.task), g.slices), partial=partial)
            for g in universe]
