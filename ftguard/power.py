"""`ftguard power`: the minimum detectable change of every task of some suites.

Binary metrics use McNemar's power (:func:`ftguard.stats.mde_paired_binary`) with an assumed
discordance rate; continuous mean metrics (F1, ROUGE) need a baseline RunRecord for the
spread of per-item scores and assume a correlation of 0.5 between base and candidate, so
the per-item differences have the same standard deviation as the scores. Corpus metrics
(BLEU, perplexity) are compared by paired bootstrap and have no closed-form power here.
"""

from __future__ import annotations

import statistics

from ftguard.metrics import get_metric
from ftguard.record import RunRecord
from ftguard.stats import PowerRow, mde_paired_binary, mde_paired_mean
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
                rows.append(PowerRow(suite.name, task.name, binary[0], n,
                                     mde_paired_binary(n, discordance, alpha=alpha, power=power)))
            elif names and baseline is not None:
                scores = _baseline_scores(baseline, suite.name, task.name, names[0])
                if len(scores) >= 2:
                    rows.append(PowerRow(suite.name, task.name, names[0], n, mde_paired_mean(
                        n, statistics.stdev(scores), alpha=alpha, power=power)))
        if pooled:
            rows.append(PowerRow(suite.name, _POOLED, "0/1 metric", pooled,
                                 mde_paired_binary(pooled, discordance, alpha=alpha, power=power)))
    return rows


def render_power(rows: list[PowerRow], *, discordance: float, alpha: float, power: float) -> str:
    lines = [(f"minimum detectable change, paired, {power:.0%} power, two-sided alpha "
              f"{alpha:g}, assumed discordance {discordance:.0%}"),
             f"{'suite':10s} {'task':18s} {'metric':14s} {'n':>5s} {'MDE (points)':>12s}"]
    for r in rows:
        lines.append(f"{r.suite:10s} {r.task:18s} {r.metric:14s} {r.n:5d} {100 * r.mde:12.1f}")
    return "\n".join(lines)


def _is_mean(name: str) -> bool:
    return get_metric(name).aggregation == "mean"


def _baseline_scores(record: RunRecord, suite: str, task: str, metric: str) -> list[float]:
    for s in record.suites:
        for t in s.tasks:
            if s.name == suite and t.name == task:
                return [x.scores[metric] for x in t.samples if metric in x.scores]
    return []
