"""Tasks that one run or both skipped (they could not run on that machine: a dataset not
reachable, a package not installed): compare pairs the rest, and every gate rule that selects
a skipped task is ``unchecked`` with the reason (:class:`~ftguard.gate.SkippedCheck`), so a
skipped task is never a pass."""

from __future__ import annotations

from ftguard.gate import Gateable, SkippedCheck
from ftguard.record import RunRecord, SuiteResult


def skipped_names(suite: SuiteResult | None) -> set[str]:
    return {k.name for k in suite.skipped} if suite is not None else set()


def skipped_checks(base: RunRecord, tuned: RunRecord) -> list[SkippedCheck]:
    """One check per task of a suite both runs have that either run skipped."""
    tuned_suites = {s.name: s for s in tuned.suites}
    out = []
    for suite in base.suites:
        other = tuned_suites.get(suite.name)
        if other is None:
            continue
        ran = {t.name: t for t in suite.tasks} | {t.name: t for t in other.tasks}
        in_base = {k.name: k for k in suite.skipped}
        in_tuned = {k.name: k for k in other.skipped}
        for name in dict.fromkeys([*in_base, *in_tuned]):
            skip = in_tuned.get(name) or in_base[name]
            if name in in_base and name in in_tuned:
                where = "both runs"
            else:
                where = "the tuned run" if name in in_tuned else "the base run"
            metrics = tuple(skip.metrics) or (tuple(ran[name].metrics) if name in ran else ())
            out.append(SkippedCheck(suite.name, suite.role, name, metrics,
                                    f"skipped in {where}: {skip.reason}"))
    return out


def skipped_gateables(checks: list[SkippedCheck]) -> list[Gateable]:
    return [Gateable(c.suite, c.role, c.task, c.metrics, open=not c.metrics) for c in checks]
