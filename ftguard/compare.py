"""compare(base, tuned, policy) -> Comparison: paired statistics on every shared metric.

Runs are compared item by item, so they must be comparable: same suites (content hash),
same items, same prompts, same settings. Otherwise compare refuses with the list of
differences, or, with ``allow_mismatch``, compares the intersection and says so in
``notes``. Each (suite, task, metric) gets the paired test its metric calls for:

- 0/1 per-item metrics (acc, exact_match, accuracy): exact McNemar, Tango interval;
- continuous per-item metrics (f1, rouge): paired bootstrap of the mean difference;
- corpus metrics (bleu, chrf, perplexity, macro_f1): paired bootstrap over items that
  recomputes the corpus value from summed per-item statistics.

p-values are adjusted (Holm by default, or Benjamini-Hochberg) across the gated rows, and
separately across the rest; a row is ``improved``/``regressed`` when its adjusted p-value is
below alpha.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from ftguard.errors import FtguardError
from ftguard.gate import Policy
from ftguard.record import (
    AggregateChange,
    Comparison,
    ComparisonRow,
    Flip,
    RunRecord,
    SampleResult,
    TaskResult,
)
from ftguard.stats import (
    PairedResult,
    benjamini_hochberg,
    holm,
    mcnemar_exact,
    paired_bootstrap,
    paired_corpus_bootstrap,
)
from ftguard.version import ftguard_version


class IncomparableRunsError(FtguardError):
    """The two runs did not evaluate the same items the same way."""


@dataclass(frozen=True)
class _Pair:
    suite: str
    role: str
    base: TaskResult
    tuned: TaskResult
    base_samples: list[SampleResult]
    tuned_samples: list[SampleResult]


def compare(base: RunRecord, tuned: RunRecord, policy: Policy | None = None, *,
            allow_mismatch: bool = False, resamples: int = 10_000,
            seed: int = 1234) -> Comparison:
    """Compare two RunRecords; raise IncomparableRunsError listing what differs."""
    policy = policy or Policy()
    notes: list[str] = []
    pairs = _pair_tasks(base, tuned, allow_mismatch, notes)
    rows: list[ComparisonRow] = []
    for pair in pairs:
        for position, metric in enumerate(pair.base.metrics):
            if metric not in pair.tuned.metrics:
                continue
            result = _test(pair, metric, resamples, seed)
            if result is None:
                notes.append(f"{pair.suite}/{pair.base.name} {metric}: no per-item scores, "
                             "not compared")
                continue
            rows.append(_row(pair, metric, result, headline=position == 0))
    _adjust_and_judge(rows, policy)
    failures = _apply_rules(rows, policy)
    return Comparison(
        ftguard_version=ftguard_version(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        base=base.model, tuned=tuned.model, passed=not failures, failures=failures,
        rules=[rule.describe() for rule in policy.rules], rows=rows,
        alignment_tax=_aggregate([r for r in rows if r.role == "general"]),
        gain=_aggregate([r for r in rows if r.role == "target"]),
        forgetting={suite: agg for suite in dict.fromkeys(r.suite for r in rows
                                                          if r.role == "general")
                    if (agg := _aggregate([r for r in rows if r.suite == suite]))},
        flips=_flips(pairs), notes=notes,
        settings={"alpha": policy.alpha, "correction": policy.correction,
                  "resamples": resamples, "seed": seed})


# -- pairing -----------------------------------------------------------------------------


def _pair_tasks(base: RunRecord, tuned: RunRecord, allow_mismatch: bool,
                notes: list[str]) -> list[_Pair]:
    problems: list[str] = []
    tuned_suites = {s.name: s for s in tuned.suites}
    pairs: list[_Pair] = []
    for suite in base.suites:
        other = tuned_suites.get(suite.name)
        if other is None:
            problems.append(f"suite {suite.name} is only in the base run")
            continue
        if suite.hash != other.hash:
            problems.append(f"suite {suite.name} differs (content hash {suite.hash[:12]} vs "
                            f"{other.hash[:12]}): items or prompts changed between the runs")
        tuned_tasks = {t.name: t for t in other.tasks}
        for task in suite.tasks:
            peer = tuned_tasks.get(task.name)
            if peer is None:
                problems.append(f"task {suite.name}/{task.name} is only in the base run")
                continue
            if task.settings != peer.settings:
                problems.append(f"task {suite.name}/{task.name}: settings differ "
                                f"({_settings_diff(task.settings, peer.settings)})")
            b, t = _pair_samples(suite.name, task, peer, problems)
            if b:
                pairs.append(_Pair(suite.name, suite.role, task, peer, b, t))
        problems += [f"task {suite.name}/{name} is only in the tuned run"
                     for name in tuned_tasks if name not in {t.name for t in suite.tasks}]
    problems += [f"suite {name} is only in the tuned run" for name in tuned_suites
                 if name not in {s.name for s in base.suites}]
    if problems and not allow_mismatch:
        listing = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise IncomparableRunsError(
            f"the runs are not comparable item by item:\n{listing}{more}\n"
            "Re-run both on the same suites, or pass --allow-mismatch to compare only the "
            "items the two runs share.")
    if problems:
        notes.append(f"--allow-mismatch: compared the shared items only ({len(problems)} "
                     "difference(s) ignored: " + "; ".join(problems[:5]) + ")")
    return pairs


def _pair_samples(suite: str, base: TaskResult, tuned: TaskResult,
                  problems: list[str]) -> tuple[list[SampleResult], list[SampleResult]]:
    by_id = {s.id: s for s in tuned.samples}
    only_base = [s.id for s in base.samples if s.id not in by_id]
    only_tuned = len(by_id) - (len(base.samples) - len(only_base))
    if only_base or only_tuned:
        problems.append(f"task {suite}/{base.name}: {len(only_base)} item(s) only in base "
                        f"{only_base[:3]}, {only_tuned} only in tuned (different --limit?)")
    pairs = [(s, by_id[s.id]) for s in base.samples if s.id in by_id]
    changed = [b.id for b, t in pairs if b.prompt_hash != t.prompt_hash]
    if changed:
        problems.append(f"task {suite}/{base.name}: {len(changed)} item(s) had different "
                        f"prompts, e.g. {changed[:3]}")
    kept = [(b, t) for b, t in pairs if b.prompt_hash == t.prompt_hash]
    return [b for b, _ in kept], [t for _, t in kept]


def _settings_diff(a: dict[str, object], b: dict[str, object]) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys)


# -- tests -------------------------------------------------------------------------------


def _test(pair: _Pair, metric: str, resamples: int, seed: int) -> PairedResult | None:
    from ftguard.metrics import get_metric

    try:
        definition = get_metric(metric)
    except KeyError:  # a metric ftguard does not define (lm-eval tasks): use what is there
        definition = None
    if definition is not None and definition.aggregation == "corpus":
        if not all(metric in s.stats for s in pair.base_samples + pair.tuned_samples):
            return None
        base = np.array([s.stats[metric] for s in pair.base_samples], dtype=np.float64)
        tuned = np.array([s.stats[metric] for s in pair.tuned_samples], dtype=np.float64)
        assert definition.corpus_fn is not None
        return paired_corpus_bootstrap(base, tuned, definition.corpus_fn, resamples=resamples,
                                       seed=seed)
    if not all(metric in s.scores for s in pair.base_samples + pair.tuned_samples):
        return None
    base = np.array([s.scores[metric] for s in pair.base_samples], dtype=np.float64)
    tuned = np.array([s.scores[metric] for s in pair.tuned_samples], dtype=np.float64)
    if np.isin(base, (0.0, 1.0)).all() and np.isin(tuned, (0.0, 1.0)).all() and (
            definition is None or definition.binary):
        return mcnemar_exact(base, tuned)
    return paired_bootstrap(base, tuned, resamples=resamples, seed=seed)


def _row(pair: _Pair, metric: str, result: PairedResult, *, headline: bool) -> ComparisonRow:
    return ComparisonRow(
        suite=pair.suite, task=pair.base.name, metric=metric, role=pair.role,
        base=result.base, tuned=result.tuned, delta=result.delta, ci_low=result.ci_low,
        ci_high=result.ci_high, p_value=result.p_value, p_adjusted=result.p_value,
        method=result.method, n=result.n, headline=headline,
        higher_is_better=pair.base.metrics[metric].higher_is_better)


def _adjust_and_judge(rows: list[ComparisonRow], policy: Policy) -> None:
    for row in rows:
        row.gated = any(rule.selects(row) for rule in policy.rules)
    adjust = holm if policy.correction == "holm" else benjamini_hochberg
    # three families, each corrected on its own: the gated rows (what the gate decides on),
    # the other tasks' headline metrics, and every secondary metric (per-label precision,
    # extra metrics), so a task's many secondary rows do not dilute its headline's test
    families = ([r for r in rows if r.gated], [r for r in rows if not r.gated and r.headline],
                [r for r in rows if not r.gated and not r.headline])
    for family in families:
        if not family:
            continue
        for row, p in zip(family, adjust([r.p_value for r in family])):
            row.p_adjusted = float(p)
            better = row.delta > 0 if row.higher_is_better else row.delta < 0
            if row.p_adjusted < policy.alpha and row.delta != 0:
                row.verdict = "improved" if better else "regressed"


def _apply_rules(rows: list[ComparisonRow], policy: Policy) -> list[str]:
    failures: list[str] = []
    for rule in policy.rules:
        for row in rows:
            if rule.selects(row) and (reason := rule.check(row)):
                row.reason = f"{row.reason}; {reason}" if row.reason else reason
                failures.append(f"[{rule.describe()}] {reason}")
    return failures


# -- aggregates and flips ----------------------------------------------------------------


def _aggregate(rows: list[ComparisonRow]) -> AggregateChange | None:
    """Mean of per-task relative changes of headline metrics, oriented so that positive is
    better. The tasks are independent samples, so the variance of the mean is the sum of the
    per-task variances (from each delta's CI, normal approximation) over T^2."""
    picked = [r for r in rows if r.headline and abs(r.base) > 1e-12]
    if not picked:
        return None
    changes, variances = [], []
    for r in picked:
        sign = 1.0 if r.higher_is_better else -1.0
        changes.append(sign * r.delta / abs(r.base))
        half = (r.ci_high - r.ci_low) / 2 / 1.959964 / abs(r.base)
        variances.append(half**2)
    mean = float(np.mean(changes))
    spread = 1.959964 * math.sqrt(sum(variances)) / len(picked)
    return AggregateChange(value=mean, ci_low=mean - spread, ci_high=mean + spread,
                           tasks=[f"{r.suite}/{r.task}" for r in picked])


def _flips(pairs: list[_Pair]) -> list[Flip]:
    """Items whose headline 0/1 metric changed; correct -> wrong first, most decisive first."""
    flips: list[Flip] = []
    for pair in pairs:
        metric = next(iter(pair.base.metrics), None)
        if metric is None:
            continue
        for b, t in zip(pair.base_samples, pair.tuned_samples):
            before, after = b.scores.get(metric), t.scores.get(metric)
            if before not in (0.0, 1.0) or after not in (0.0, 1.0) or before == after:
                continue
            flips.append(Flip(
                suite=pair.suite, task=pair.base.name, metric=metric, id=b.id,
                direction="correct_to_wrong" if before == 1.0 else "wrong_to_correct",
                target=b.target, base_prediction=b.prediction, tuned_prediction=t.prediction,
                prompt=t.prompt or b.prompt, severity=_severity(b, t)))
    flips.sort(key=lambda f: (f.direction != "correct_to_wrong", -f.severity))
    return flips


def _severity(base: SampleResult, tuned: SampleResult) -> float:
    """Swing of the gold answer's log-likelihood margin over the best other choice."""

    def margin(sample: SampleResult) -> float | None:
        lls, gold = sample.loglikelihoods, sample.gold
        if not lls or gold is None or len(lls) < 2:
            return None
        return lls[gold] - max(v for i, v in enumerate(lls) if i != gold)

    a, b = margin(base), margin(tuned)
    return abs(a - b) if a is not None and b is not None else 0.0
