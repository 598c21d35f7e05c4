"""compare(base, tuned, policy) -> Comparison: paired statistics on every shared metric.

Runs are compared item by item, so they must be comparable: same suites (content hash),
same items, same prompts, same settings. Otherwise compare refuses with the list of
differences, or, with ``allow_mismatch``, compares the intersection and says so in
``notes``. Each (suite, task, metric) gets the paired test its metric calls for:

- 0/1 per-item metrics (acc, exact_match, accuracy): exact McNemar, Tango interval;
- continuous per-item metrics (f1, rouge): sign-flip permutation test of the mean
  difference (exact enumeration at small n), interval by inverting it;
- corpus metrics (bleu, chrf, perplexity, macro_f1): paired permutation (swap) test of the
  corpus value recomputed from summed per-item statistics.

Each test keeps its false-alarm rate at or below alpha at every n (3 items included; see
:mod:`ftguard.stats`); a row says whether any outcome on its n could be significant
(``testable``) and its minimum detectable change (``mde``). p-values are adjusted (Holm by
default, or Benjamini-Hochberg) within the gated rows of each role, and separately across the
rest; a row is ``improved``/``regressed`` when its adjusted p-value is below alpha. A row
without per-item scores is kept as ``not-compared``, so a rule that gates it is ``unchecked``
(see :func:`ftguard.gate.judge`), never silently passed; so is a rule that selects a task one
run skipped (:mod:`ftguard.compare_skips`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from ftguard.compare_flips import item_flips
from ftguard.compare_instructions import type_changes
from ftguard.errors import FtguardError, UsageError
from ftguard.gate import Policy, row_name
from ftguard.record import (
    AggregateChange,
    Comparison,
    ComparisonRow,
    RuleResult,
    RunRecord,
    SampleResult,
    TaskResult,
)
from ftguard.stats import (
    PairedResult,
    benjamini_hochberg,
    holm,
    mcnemar_exact,
    one_item,
    paired_swap_test,
    sign_flip_test,
    smallest_testable_n,
)
from ftguard.variant_names import is_variant_task
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
            allow_mismatch: bool = False, resamples: int = 10_000, seed: int = 1234,
            check_rules: bool = True) -> Comparison:
    """Compare two RunRecords under ``policy`` (default: :func:`ftguard.gate.resolve_policy`
    of the tuned run's suites); raise IncomparableRunsError listing what differs, and
    UsageError when a rule selects nothing or nothing is gated (``check_rules=False``: the
    caller resolved the rules against a wider set of runs)."""
    from ftguard.gate import check_rules as resolve_rules
    from ftguard.gate import gateables_of_run, judge, resolve_policy, suite_gates_of_run

    if policy is None:
        policy = resolve_policy(suite_gates=suite_gates_of_run(tuned))
    from ftguard.compare_skips import skipped_checks, skipped_gateables
    from ftguard.compare_slices import one_sided, slice_rows, with_slice_names

    skips = skipped_checks(base, tuned)  # every rule selecting one is unchecked
    notes: list[str] = []
    pairs, empty = _pair_tasks(base, tuned, allow_mismatch, notes)
    skips += one_sided(pairs, notes)  # slices one run lacks: unchecked too
    if check_rules:
        shared = tuned.model_copy(update={"suites": [
            s.model_copy(update={"skipped": [], "tasks": [
                t for t in s.tasks if (s.name, t.name) in _names(pairs) | set(empty)]})
            for s in tuned.suites]})
        universe = with_slice_names(gateables_of_run(shared), pairs, base, tuned)
        universe += skipped_gateables(skips)
        rules = policy.rules
        if policy.from_suites and (base.config.tasks or tuned.config.tasks):
            # a suite's own rules were checked against all its tasks when it was loaded; those
            # whose tasks --tasks left out select no row here and end unchecked (not a pass)
            from ftguard.gate.resolve import rule_problem

            rules = [r for r in rules if rule_problem(r, universe) is None]
        resolve_rules(rules, universe)
        _refuse_empty(policy, empty, base)
    rows: list[ComparisonRow] = []
    for pair in pairs:
        for position, metric in enumerate(pair.base.metrics):
            if metric in pair.tuned.metrics:
                rows.append(_row(pair, metric, resamples, seed, headline=position == 0,
                                 alpha=policy.alpha))
    rows += slice_rows(pairs, lambda p, m, h: _row(p, m, resamples, seed, headline=h,
                                                    alpha=policy.alpha), policy)
    for row in rows:
        row.gated = any(rule.selects(row) for rule in policy.rules)
    if check_rules and not any(r.gated for r in rows) and not any(
            k.selected_by(rule) for k in skips for rule in policy.rules):
        raise UsageError("nothing was gated: no compared row is checked by any gate rule "
                         f"({policy.source}: {', '.join(r.text for r in policy.rules)}).",
                         hint="A comparison that checks nothing is not a pass. Gate at least "
                              "one metric the two runs share (see `--fail-on`).")
    _adjust_and_judge(rows, policy)
    outcomes = judge(rows, policy, skips)
    failures = [line for o in outcomes if o.fails for line in _failure_lines(o)]
    from ftguard.compare_calibration import calibration_curves
    from ftguard.health import change_warnings

    return Comparison(
        ftguard_version=ftguard_version(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        base=base.model, tuned=tuned.model,
        passed=any(r.gated for r in rows) and not any(o.fails for o in outcomes),
        failures=failures, rules=[rule.text for rule in policy.rules], gate=outcomes,
        policy_source=policy.source,
        underpowered=[line for o in outcomes for line in o.underpowered], rows=rows,
        not_gated=_not_gated(rows),
        warnings=change_warnings(base, tuned),
        alignment_tax=_aggregate([r for r in rows if r.role == "general"]),
        gain=_aggregate([r for r in rows if r.role == "target"]),
        forgetting={suite: agg for suite in dict.fromkeys(r.suite for r in rows
                                                          if r.role == "general")
                    if (agg := _aggregate([r for r in rows if r.suite == suite]))},
        calibration=calibration_curves(pairs), instruction_types=type_changes(pairs),
        flips=item_flips(pairs), notes=notes,
        settings={"alpha": policy.alpha, "correction": policy.correction,
                  "strict_power": policy.strict_power,
                  "allow_unchecked": list(policy.allow_unchecked),
                  "resamples": resamples, "seed": seed})


def _names(pairs: list[_Pair]) -> set[tuple[str, str]]:
    return {(p.suite, p.base.name) for p in pairs}


def _refuse_empty(policy: Policy, empty: list[tuple[str, str]], base: RunRecord) -> None:
    """With --allow-mismatch, a gated task the runs share no items of cannot be judged."""
    roles = {s.name: s.role for s in base.suites}
    for suite, task in empty:
        for rule in policy.rules:
            if rule.selects_task(suite, roles.get(suite, ""), task):
                raise UsageError(
                    f"--allow-mismatch: task {suite}/{task} has no item in both runs, so gate "
                    f"rule {rule.text!r} ({rule.origin}) has nothing to compare there.",
                    hint="Evaluate both models on the same items (same --limit/--subset and "
                         "suite version), or gate other tasks.")


def _failure_lines(outcome: RuleResult) -> list[str]:
    if outcome.outcome == "failed":
        return [f"[{outcome.rule}] {reason}" for reason in outcome.failures]
    if outcome.outcome == "unchecked":
        return [f"[{outcome.rule}] unchecked: {why} (pass --allow-unchecked "
                f"'{outcome.rule}' to accept that)" for why in outcome.unchecked]
    return [f"[{outcome.rule}] underpowered (--strict-power): {why}"
            for why in outcome.underpowered]


def _not_gated(rows: list[ComparisonRow]) -> list[str]:
    """Significant changes no rule checks, in words."""
    return [f"{row_name(r)} {r.verdict} significantly ({r.base:.4g} -> "
            f"{r.tuned:.4g}, p={r.p_adjusted:.3g} adjusted), but no gate rule checks it"
            for r in rows if not r.gated and r.verdict in ("improved", "regressed")]


# -- pairing -----------------------------------------------------------------------------

def _pair_tasks(base: RunRecord, tuned: RunRecord, allow_mismatch: bool,
                notes: list[str]) -> tuple[list[_Pair], list[tuple[str, str]]]:
    """The tasks of both runs with their shared items, and the tasks both runs have but
    share no item of (possible only with ``allow_mismatch``)."""
    from ftguard.compare_skips import skipped_names

    problems: list[str] = []
    tuned_suites = {s.name: s for s in tuned.suites}
    pairs: list[_Pair] = []
    empty: list[tuple[str, str]] = []
    for suite in base.suites:
        other = tuned_suites.get(suite.name)
        if other is None:
            problems.append(f"suite {suite.name} is only in the base run")
            continue
        if suite.hash != other.hash:
            problems.append(f"suite {suite.name} differs (content hash {suite.hash[:12]} vs "
                            f"{other.hash[:12]}): items or prompts changed between the runs")
        skipped = skipped_names(suite) | skipped_names(other)  # gated as unchecked instead
        tuned_tasks = {t.name: t for t in other.tasks if t.name not in skipped}
        for task in (t for t in suite.tasks if t.name not in skipped):
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
            else:
                empty.append((suite.name, task.name))
        problems += [f"task {suite.name}/{name} is only in the tuned run"
                     for name in tuned_tasks if name not in {t.name for t in suite.tasks}]
    problems += [f"suite {name} is only in the tuned run" for name in tuned_suites
                 if name not in {s.name for s in base.suites}]
    if problems and not allow_mismatch:
        listing = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        partial = "".join(f"  ({name} run: {why})\n" for name, run in (("base", base),
                          ("tuned", tuned)) if (why := run.config.partial_reason()))
        raise IncomparableRunsError(
            f"the runs are not comparable item by item:\n{listing}{more}\n{partial}"
            "Re-run both on the same suites, or pass --allow-mismatch to compare only the "
            "items the two runs share.")
    if problems:
        notes.append(f"--allow-mismatch: compared the shared items only ({len(problems)} "
                     "difference(s) ignored: " + "; ".join(problems[:5]) + ")")
    return pairs, empty


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
    """The paired test the metric calls for, valid at every n; None without per-item data."""
    from ftguard.metrics import get_metric
    from ftguard.metrics.external import recorded
    from ftguard.metrics.recompute import recomputed_test

    try:
        definition = get_metric(metric)
    except KeyError:  # lm-eval's metrics; an evaluate module loaded again from the record
        definition = recorded(metric, pair.tuned)
    if len(pair.base_samples) == 1:  # untestable (no paired test applies), never a crash
        return one_item(*(r.metrics[metric].value for r in (pair.base, pair.tuned)))
    if definition is not None and definition.recompute is not None:  # evaluate, corpus
        return recomputed_test(definition, pair.base_samples, pair.tuned_samples,
                               resamples=resamples, seed=seed)
    if definition is not None and definition.aggregation in ("corpus", "set"):
        if not all(metric in s.stats for s in pair.base_samples + pair.tuned_samples):
            return None
        base = np.array([s.stats[metric] for s in pair.base_samples], dtype=np.float64)
        tuned = np.array([s.stats[metric] for s in pair.tuned_samples], dtype=np.float64)
        if definition.set_fn is not None:
            from ftguard.stats.set_swap import set_swap_test

            return set_swap_test(base, tuned, definition.set_fn, resamples=resamples, seed=seed)
        assert definition.corpus_fn is not None
        return paired_swap_test(base, tuned, definition.corpus_fn, resamples=resamples,
                                seed=seed)
    if not all(metric in s.scores for s in pair.base_samples + pair.tuned_samples):
        return None
    base = np.array([s.scores[metric] for s in pair.base_samples], dtype=np.float64)
    tuned = np.array([s.scores[metric] for s in pair.tuned_samples], dtype=np.float64)
    if np.isin(base, (0.0, 1.0)).all() and np.isin(tuned, (0.0, 1.0)).all() and (
            definition is None or definition.binary):
        return mcnemar_exact(base, tuned)
    return sign_flip_test(base, tuned, resamples=resamples, seed=seed)


def _row(pair: _Pair, metric: str, resamples: int, seed: int, *, headline: bool,
         alpha: float) -> ComparisonRow:
    higher = pair.base.metrics[metric].higher_is_better
    common = {"suite": pair.suite, "task": pair.base.name, "metric": metric, "role": pair.role,
              "headline": headline, "higher_is_better": higher}
    result = _test(pair, metric, resamples, seed)
    if result is None:  # no per-item scores (corpus-only metrics imported from lm-eval)
        b, t = pair.base.metrics[metric].value, pair.tuned.metrics[metric].value
        return ComparisonRow(**common, base=b, tuned=t, delta=t - b, ci_low=None, ci_high=None,
                             p_value=None, p_adjusted=None, method="none",
                             n=len(pair.base_samples), verdict="not-compared", comparable=False,
                             testable=False, reason="no per-item scores in the records")
    return ComparisonRow(
        **common, base=result.base, tuned=result.tuned, delta=result.delta,
        ci_low=_bounded(result.ci_low), ci_high=_bounded(result.ci_high),
        p_value=result.p_value, p_adjusted=result.p_value, method=result.method, n=result.n,
        testable=result.testable, mde=result.mde, spread=result.spread,
        items_needed=None if result.testable else smallest_testable_n(result.method, alpha))


def _bounded(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _adjust_and_judge(rows: list[ComparisonRow], policy: Policy) -> None:
    """Adjust p-values within families and set each row's verdict. Families, each corrected
    on its own: the gated rows of each role (what the gate decides on; the default gate is
    Holm within each role), the other tasks' headline metrics, and every other secondary
    metric (per-label precision, extra metrics, variants' rows), so a task's many secondary
    rows do not dilute its headline's test."""
    adjust = holm if policy.correction == "holm" else benjamini_hochberg
    compared = [r for r in rows if r.comparable and r.slice is None]
    families = [[r for r in compared if r.gated and r.role == role]
                for role in dict.fromkeys(r.role for r in compared)]
    own = [r for r in compared if not r.gated and r.headline and not is_variant_task(r.task)]
    families += [own, [r for r in compared if not r.gated and r not in own]]
    for family in families:
        if not family:
            continue
        for row, p in zip(family, adjust([float(r.p_value) for r in family])):  # type: ignore[arg-type]
            row.p_adjusted = float(p)
            better = row.delta > 0 if row.higher_is_better else row.delta < 0
            if row.p_adjusted < policy.alpha and row.delta != 0:
                row.verdict = "improved" if better else "regressed"


# -- aggregates and flips ----------------------------------------------------------------


def _aggregate(rows: list[ComparisonRow]) -> AggregateChange | None:
    """Mean of per-task relative changes of headline metrics, oriented so that positive is
    better. The tasks are independent samples, so the variance of the mean is the sum of the
    per-task variances (from each delta's CI, normal approximation) over T^2."""
    picked = [r for r in rows if r.headline and r.comparable and abs(r.base) > 1e-12
              and not is_variant_task(r.task) and r.slice is None]  # each task once, whole
    if not picked:
        return None
    changes, variances = [], []
    for r in picked:
        sign = 1.0 if r.higher_is_better else -1.0
        changes.append(sign * r.delta / abs(r.base))
        if r.ci_low is not None and r.ci_high is not None:
            half = (r.ci_high - r.ci_low) / 2 / 1.959964 / abs(r.base)
            variances.append(half**2)
    mean = float(np.mean(changes))
    tasks = [f"{r.suite}/{r.task}" for r in picked]
    if len(variances) < len(picked):  # a task too small to bound its change: no interval
        return AggregateChange(value=mean, ci_low=None, ci_high=None, tasks=tasks)
    spread = 1.959964 * math.sqrt(sum(variances)) / len(picked)
    return AggregateChange(value=mean, ci_low=mean - spread, ci_high=mean + spread,
                           tasks=tasks)
