"""The gate's one rule language and its one policy resolver.

A rule is written ``[SELECTOR:]METRIC:CONDITION`` everywhere: ``--fail-on``, policy YAML,
a suite's ``gate:`` section, pytest ids, JUnit, JSON and HTML. SELECTOR is ``*``, a role
(``target``/``general``), a suite name, or ``suite/task`` (globs allowed); METRIC a metric
name or ``headline`` (each task's first metric). CONDITION is one of

==================  ========================================================================
``not-regressed``   no significant regression (after correction)
``improved``        a significant improvement (after correction) is required
``noninferior(2%)`` the CI's worse end may not pass -2% of the base value (or ``(0.02)``)
``5%`` / ``0.02``   max drop: the point estimate may not get worse by more than that
``>=0.70``          floor on the tuned value
``<=20``            ceiling on the tuned value
==================  ========================================================================

A policy file's mapping form ``{select, metric, rule, margin|min|max}`` names the same
conditions: ``rule: not-regressed | improved | noninferior | max-drop | ">=" | "<="`` (or a
whole condition, ``rule: noninferior(2%)``). "Worse" follows the metric's direction.

Where rules come from (:func:`resolve_policy`, the one resolver every surface calls): the
``--fail-on`` flags, else the ``--policy`` file, else the suites' ``gate:`` sections, else
the default (every headline metric of every suite must not regress significantly, Holm within
each role). Every rule is resolved against the runs before anything is judged
(:func:`check_rules`): a selector that matches nothing, or a metric no selected task has, is
a :class:`~ftguard.errors.UsageError` naming where the rule came from and the nearest valid
names. :func:`judge` turns compared rows into one outcome per rule: ``passed``, ``failed``,
``unchecked`` (a row could not be compared item by item) or ``underpowered`` (a row could not
have detected what the rule asks for).
"""


from __future__ import annotations

from ftguard.gate.grammar import parse_condition, parse_rule, rule_from, rule_from_mapping
from ftguard.gate.judge import SkippedCheck, judge, row_outcome
from ftguard.gate.policy import (
    DEFAULT_RULES,
    Policy,
    PolicyFile,
    SuiteGate,
    load_policy,
    resolve_policy,
    suite_gates_of_run,
    suite_gates_of_suites,
)
from ftguard.gate.resolve import (
    Gateable,
    check_rules,
    gateables_of_run,
    gateables_of_suites,
    rule_problem,
)
from ftguard.gate.rules import CONDITIONS, ROLES, Rule, format_ci, row_name, row_stats

__all__ = ["CONDITIONS", "DEFAULT_RULES", "ROLES", "Gateable", "Policy", "PolicyFile", "Rule",
           "SkippedCheck", "SuiteGate", "check_rules", "format_ci", "gateables_of_run",
           "gateables_of_suites",
           "judge", "load_policy", "parse_condition", "parse_rule", "resolve_policy",
           "row_name", "row_outcome", "row_stats", "rule_from", "rule_from_mapping", "rule_problem",
           "suite_gates_of_run", "suite_gates_of_suites"]
