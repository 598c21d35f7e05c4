"""`ftguard power`: the minimum detectable change of every task of some suites.

Binary metrics use McNemar's power (:func:`ftguard.stats.mde_paired_binary`) with an assumed
discordance rate; continuous mean metrics (F1, ROUGE) need a baseline RunRecord for the
spread of per-item scores and assume a correlation of 0.5 between base and candidate, so
the per-item differences have the same standard deviation as the scores
(:func:`ftguard.stats.mde_shift`, the sign-flip test's). Corpus metrics (BLEU,
perplexity) need both runs for their spread (``ftguard compare`` reports their MDE).

Where nothing is detectable with the requested power -- below 6 items no outcome is
significant at 5%, and at 20% discordance a 0/1 metric needs 39 items before even a
20-point change is -- the row says so and from which n it would be, instead of a figure.
"""

from __future__ import annotations

import statistics

from ftguard.metrics import get_metric
from ftguard.record import RunRecord
from ftguard.stats import (
    PowerRow,
    mde_paired_binary,
    mde_shift,
    smallest_detectable_n,
    smallest_testable_n,
)
from ftguard.suite import Suite

_POOLED = "all binary items"


def power_table(suites: list[Suite], *, discordance: float, alpha: float, power: float,
                baseline: RunRecord | None = None) -> list[PowerRow]:
    """One row per task with a binary or (given a baseline) continuous headline metric, and
    one pooled row per suite over the items of all its binary-scored tasks."""
    rows: list[PowerRow] = []
    for suite in suites:
        pooled = 0
        for task in suite.tasks:
            n = len(task.instances)
            names = [m for m in task.spec.metric_names if _is_mean(m)]
            binary = [m for m in names if get_metric(m).binary]
            if binary:
                pooled += n
                rows.append(_binary_row(suite.name, task.name, binary[0], n,
                                        discordance=discordance, alpha=alpha, power=power))
            elif names and baseline is not None:
                scores = _baseline_scores(baseline, suite.name, task.name, names[0])
                if len(scores) >= 2:
                    mde = mde_shift(n, statistics.stdev(scores), alpha=alpha, power=power)
                    rows.append(PowerRow(suite.name, task.name, names[0], n, mde,
                                         None if mde is not None else smallest_testable_n(
                                             "sign-flip-exact", alpha)))
        if pooled:
            rows.append(_binary_row(suite.name, _POOLED, "0/1 metric", pooled,
                                    discordance=discordance, alpha=alpha, power=power))
    return rows


def _binary_row(suite: str, task: str, metric: str, n: int, *, discordance: float,
                alpha: float, power: float) -> PowerRow:
    mde = mde_paired_binary(n, discordance, alpha=alpha, power=power)
    return PowerRow(suite, task, metric, n, mde, None if mde is not None else
                    smallest_detectable_n(discordance, alpha=alpha, power=power))


def render_power(rows: list[PowerRow], *, discordance: float, alpha: float, power: float) -> str:
    width = max([14, *(len(r.metric) for r in rows)])  # prompt_level_strict_acc is longer
    lines = [(f"minimum detectable change, paired, {power:.0%} power, two-sided alpha "
              f"{alpha:g}, assumed discordance {discordance:.0%}"),
             f"{'suite':10s} {'task':18s} {'metric':{width}s} {'n':>5s} {'MDE (points)':>12s}"]
    for r in rows:
        lines.append(f"{r.suite:10s} {r.task:18s} {r.metric:{width}s} {r.n:5d} {_mde_text(r)}")
    return "\n".join(lines)


def _mde_text(row: PowerRow) -> str:
    if row.mde is not None:
        return f"{100 * row.mde:12.1f}"
    later = f" (detectable from n={row.detectable_from})" if row.detectable_from else ""
    return f"  not detectable at n={row.n}{later}"


def _is_mean(name: str) -> bool:
    return get_metric(name).aggregation == "mean"


def _baseline_scores(record: RunRecord, suite: str, task: str, metric: str) -> list[float]:
    for s in record.suites:
        for t in s.tasks:
            if s.name == suite and t.name == task:
                return [x.scores[metric] for x in t.samples if metric in x.scores]
    return []
