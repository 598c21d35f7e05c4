"""Resolving rules against the runs before anything is judged: a selector that matches no
suite or task, or a metric no selected task has, is a UsageError with the nearest names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ftguard.errors import UsageError
from ftguard.gate.grammar import _at
from ftguard.gate.rules import ROLES, Rule

if TYPE_CHECKING:
    from ftguard.record import RunRecord
    from ftguard.suite import Suite


@dataclass(frozen=True)
class Gateable:
    """A task the gate can select, with its metrics (first = headline)."""

    suite: str
    role: str
    task: str
    metrics: tuple[str, ...]
    open: bool = False
    """Metrics not known before evaluation (lm-eval tasks): any name may match."""
    slices: tuple[str, ...] = ()
    """The task's slices, ``FIELD=VALUE`` (a slice rule must select one of them)."""
    partial: bool = False
    """The run evaluated only some items (``--limit``, ``--subset``): a slice may have none
    there, so a slice rule selecting none of ``slices`` is not an error (it ends unchecked)."""


def gateables_of_run(run: RunRecord) -> list[Gateable]:
    """The run's tasks, those it skipped included (with the metrics they would report)."""
    return [Gateable(s.name, s.role, t.name, tuple(t.metrics), slices=tuple(t.slices or ()))
            for s in run.suites for t in s.tasks] + [Gateable(s.name, s.role, k.name, tuple(k.metrics),
                                          open=not k.metrics)
                                 for s in run.suites for k in s.skipped]


def gateables_of_suites(suites: Iterable[Suite]) -> list[Gateable]:
    from ftguard.metrics.registry import expand_metric_names

    out = []
    for suite in suites:
        for task in suite.tasks:
            spec = task.spec
            if spec.kind == "lm_eval":  # from the lm-eval task's YAML, read at load
                metrics = task.lm_eval_metrics
            else:
                try:
                    metrics = tuple(expand_metric_names(spec.kind, spec.metric_names,
                                                        spec.labels))
                except (KeyError, ValueError, TypeError):  # an unknown metric, reported apart
                    metrics = ()
            if task.variants and metrics:
                from ftguard.metrics.consistency import NAMES

                out += [Gateable(suite.name, suite.spec.role, v.name, metrics)
                        for v in task.variants]
                metrics = (*metrics, *NAMES)
            from ftguard.slices import slice_counts

            out.append(Gateable(suite.name, suite.spec.role, task.name, metrics,
                                open=not metrics,
                                slices=tuple(slice_counts([i.slices for i in task.instances]))))
    return out


def check_rules(rules: Sequence[Rule], universe: Sequence[Gateable]) -> None:
    """Raise UsageError for every rule that selects no task, or names a metric none of its
    tasks has (all such rules at once, each with where it came from and the nearest names)."""
    problems = [p for rule in rules if (p := rule_problem(rule, universe))]
    if problems:
        text = problems[0] if len(problems) == 1 else (
            f"{len(problems)} gate rules select nothing:\n" + "\n".join(f"  - {p}"
                                                                       for p in problems))
        raise UsageError(text, hint="A rule that selects nothing would pass without checking "
                                    "anything; fix its selector or metric.")


def rule_problem(rule: Rule, universe: Sequence[Gateable]) -> str | None:
    """Why ``rule`` selects nothing in ``universe`` (None when it selects something)."""
    tasks = [g for g in universe if rule.selects_task(g.suite, g.role, g.task)]
    head = f"{_at(rule.origin)}{rule.text!r}"
    if not tasks:
        names = sorted({g.suite for g in universe} | {f"{g.suite}/{g.task}" for g in universe})
        wanted = rule.task_select.split("/")[-1]
        by_task = {g.task: f"{g.suite}/{g.task}" for g in universe}
        close = list(dict.fromkeys(_nearest(rule.task_select, names + list(ROLES)) + [
            by_task[t] for t in _nearest(wanted, sorted(by_task))]))[:3]
        return (f"{head}: selector {rule.task_select!r} matches no suite or task of the runs "
                f"(suites: {', '.join(sorted({g.suite for g in universe})) or 'none'}; roles: "
                f"{', '.join(sorted({g.role for g in universe})) or 'none'})" + _did_you(close))
    if rule.slice_select is not None:
        have_slices = sorted({n for g in tasks for n in g.slices})
        tasks = [g for g in tasks if g.partial or any(rule.selects_slice(n) for n in g.slices)]
        if not tasks:
            shown = ", ".join(have_slices[:12]) + (" ..." if len(have_slices) > 12 else "")
            return (f"{head}: slice [{rule.slice_select}] matches no slice of the selected "
                    f"task(s) (their slices: {shown or 'none: no slice_field'})"
                    + _did_you(_nearest(rule.slice_select, have_slices)))
    if rule.metric == "headline" or any(g.open or rule.metric in g.metrics for g in tasks):
        return None
    have = sorted({m for g in tasks for m in g.metrics})
    shown = ", ".join(f"{g.suite}/{g.task}" for g in tasks[:4]) + (" ..." if len(tasks) > 4
                                                                    else "")
    return (f"{head}: metric {rule.metric!r} is not a metric of the selected task(s) ({shown}); "
            f"they have {', '.join(have)} (or 'headline')" + _did_you(_nearest(rule.metric,
                                                                           have)))


def _nearest(word: str, names: Sequence[str]) -> list[str]:
    """Up to three names close to ``word``: similar spelling, or one a prefix of the other
    (``acc`` / ``accuracy``)."""
    low = word.lower()
    prefixed = [n for n in names if low and (n.lower().startswith(low) or low.startswith(
        n.lower()))]
    return list(dict.fromkeys(difflib.get_close_matches(word, list(names), n=3, cutoff=0.6)
                              + prefixed))[:3]


def _did_you(names: list[str]) -> str:
    return f". Did you mean {' or '.join(repr(n) for n in names)}?" if names else "."
