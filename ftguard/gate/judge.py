"""Judging: one outcome per rule over the compared rows (``passed | failed | unchecked |
underpowered``), and how one (rule, row) check reads on per-check surfaces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ftguard.gate.policy import Policy
from ftguard.gate.rules import Rule, row_name, row_stats

if TYPE_CHECKING:
    from ftguard.record import ComparisonRow, RuleResult


@dataclass(frozen=True)
class SkippedCheck:
    """A task one run or both skipped (it could not run there): every rule that selects it is
    ``unchecked`` with ``reason``, never passed."""

    suite: str
    role: str
    task: str
    metrics: tuple[str, ...]
    """The metrics it reports (first = headline); empty when unknown (any rule matches)."""
    reason: str
    slice: str | None = None
    """A slice only one run has (``FIELD=VALUE``): only rules selecting it select the check;
    None for a skipped task, which every rule selecting the task selects (its slices too)."""

    def selected_by(self, rule: Rule) -> bool:
        return rule.selects_task(self.suite, self.role, self.task) and (
            self.slice is None or rule.selects_slice(self.slice)) and (
            not self.metrics or rule.metric == "headline" or rule.metric in self.metrics)

    @property
    def name(self) -> str:
        return f"{self.suite}/{self.task}" + (f"[{self.slice}]" if self.slice else "")

    def metric_for(self, rule: Rule) -> str:
        if rule.metric == "headline":
            return self.metrics[0] if self.metrics else "headline"
        return rule.metric


@dataclass
class _Tally:
    failures: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    underpowered: list[str] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)


def judge(rows: Sequence[ComparisonRow], policy: Policy,
          skipped: Sequence[SkippedCheck] = ()) -> list[RuleResult]:
    """One outcome per rule of ``policy`` over the compared ``rows`` (marking each row's
    ``reason`` and ``rules``): ``failed`` when a row breaks it, else ``unchecked`` when a row
    could not be compared item by item or it selects a ``skipped`` task, else
    ``underpowered`` when a row could not have detected what the rule asks for, else
    ``passed``."""
    from ftguard.record import RuleResult

    results = []
    for rule in policy.rules:
        tally = _Tally()
        for row in rows:
            if not rule.selects(row):
                continue
            row.rules.append(rule.text)
            name = row_name(row)
            tally.rows.append(name)
            if not row.comparable:
                why = f"{name}: {row.reason or 'no per-item scores'}; not compared item by item"
                tally.unchecked.append(why)
                continue
            if reason := rule.check(row):
                row.failed = True
                row.reason = f"{row.reason}; {reason}" if row.reason else reason
                tally.failures.append(reason)
            elif weak := rule.underpowered(row):
                row.underpowered = True
                tally.underpowered.append(weak)
        for skip in skipped:
            if skip.selected_by(rule):
                name = f"{skip.name} {skip.metric_for(rule)}"
                tally.rows.append(name)
                tally.unchecked.append(f"{name}: {skip.reason}; not compared")
        if not tally.rows:
            tally.unchecked.append(f"{rule.text}: selects no row the two runs both have")
        allowed = policy.allows_unchecked(rule)
        if tally.failures:
            outcome = "failed"
        elif tally.unchecked:
            outcome = "unchecked"
        elif tally.underpowered:
            outcome = "underpowered"
        else:
            outcome = "passed"
        fails = outcome == "failed" or (outcome == "unchecked" and not allowed) or (
            outcome == "underpowered" and policy.strict_power)
        results.append(RuleResult(rule=rule.text, origin=rule.origin,
                                  description=rule.describe(), outcome=outcome, fails=fails,
                                  rows=tally.rows, failures=tally.failures,
                                  unchecked=tally.unchecked, underpowered=tally.underpowered,
                                  allowed_unchecked=allowed))
    return results


def row_outcome(result: RuleResult, row: ComparisonRow | None, *, strict_power: bool
                ) -> tuple[str, str]:
    """How one (rule, row) check reads on a per-check surface (pytest item, JUnit testcase):
    ``("fail" | "skip" | "pass", message)``. Unchecked rows fail unless allowed (then they are
    skipped), underpowered ones are skipped, or fail with strict power: never a silent pass."""
    if row is None:
        message = (f"unchecked: {result.rule} has no compared row here (the metric is not in "
                   "both runs)")
        return ("skip" if result.allowed_unchecked else "fail"), message
    name = row_name(row)
    if not row.comparable:
        message = (f"unchecked: {name} could not be compared item by item ({row.reason}); "
                   f"gate rule {result.rule} [{result.origin}]")
        return ("skip", message + "; allowed") if result.allowed_unchecked else ("fail", message)
    mine = [f for f in result.failures if f.startswith((name + " ", name + ":"))]
    if mine:
        return "fail", mine[0]
    weak = [w for w in result.underpowered if w.startswith((name + " ", name + ":"))]
    if weak:
        return ("fail" if strict_power else "skip"), f"underpowered: {weak[0]}"
    return "pass", f"{name}: {result.rule} passed; {row_stats(row)}"
