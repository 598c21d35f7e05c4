"""Gate rules: which comparison rows must pass, and what passing means.

A rule selects rows (``*``, a role ``general``/``target``, a suite name, or ``suite/task``
with glob patterns) and a metric (a name, or ``headline`` = each task's first metric), and
states a condition. Directions come from the metric's ``higher_is_better``: "drop" always
means "got worse".

``--fail-on`` grammar, in the spirit of pytest-benchmark's ``--benchmark-compare-fail
mean:5%``: ``[SELECTOR:]METRIC:CONDITION`` where CONDITION is

- ``5%`` or ``0.02``   max_drop: the point estimate may not get worse by more than 5% of the
                       base value (relative) or 0.02 (absolute);
- ``>=0.70``/``<=20``  floor / ceiling on the tuned value;
- ``improved``         superiority: a significant improvement (after correction) is required;
- ``not-regressed``    no significant regression (after correction);
- ``noninferior(2%)``  non-inferiority: fails only when the CI's worse end is past -margin.

A policy file (YAML) holds ``alpha``, ``correction`` (holm | bh) and ``rules``: each either
a --fail-on string or a mapping ``{select, metric, rule, margin|min|max, relative}``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ftguard.errors import UsageError
from ftguard.record import ComparisonRow, RunRecord

RuleKind = Literal["no_regression", "non_inferiority", "superiority", "floor", "ceiling",
                   "max_drop"]
RULE_KINDS: tuple[str, ...] = ("no_regression", "non_inferiority", "superiority", "floor",
                               "ceiling", "max_drop")
_NUMBER = r"[0-9]*\.?[0-9]+"


@dataclass(frozen=True)
class Rule:
    """One gate rule."""

    kind: RuleKind
    select: str = "*"
    """Rows it applies to: ``*``, a role, a suite name, or ``suite/task`` (globs allowed)."""
    metric: str = "headline"
    """A metric name, or ``headline`` (each task's first metric)."""
    value: float = 0.0
    """Margin (non_inferiority, max_drop) or bound (floor, ceiling)."""
    relative: bool = False
    """Margin as a fraction of the base value (written ``N%``)."""

    def describe(self) -> str:
        where = "every task" if self.select == "*" else self.select
        amount = f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"
        what = {
            "no_regression": "must not regress significantly",
            "non_inferiority": f"must be non-inferior within {amount} (95% CI)",
            "superiority": "must improve significantly",
            "floor": f"must be at least {self.value:g}",
            "ceiling": f"must be at most {self.value:g}",
            "max_drop": f"may not drop by more than {amount}",
        }[self.kind]
        return f"{where} {self.metric}: {what}"

    def selects(self, row: ComparisonRow) -> bool:
        if self.metric != "headline" and row.metric != self.metric:
            return False
        if self.metric == "headline" and not row.headline:
            return False
        if self.select == "*":
            return True
        if "/" in self.select:
            return fnmatch.fnmatchcase(f"{row.suite}/{row.task}", self.select)
        return self.select in (row.role, row.suite)

    def check(self, row: ComparisonRow) -> str | None:
        """None when ``row`` passes, else why it fails (one line)."""
        sign = 1.0 if row.higher_is_better else -1.0
        gain = sign * row.delta
        worst = min(sign * row.ci_low, sign * row.ci_high)
        margin = self.value * abs(row.base) if self.relative else self.value
        where = f"{row.suite}/{row.task} {row.metric}"
        stats = (f"{row.base:.4g} -> {row.tuned:.4g} (delta {row.delta:+.4g}, 95% CI "
                 f"[{row.ci_low:+.4g}, {row.ci_high:+.4g}], p={row.p_adjusted:.3g} adjusted)")
        if self.kind == "no_regression" and row.verdict == "regressed":
            return f"{where} regressed significantly: {stats}"
        if self.kind == "superiority" and row.verdict != "improved":
            return f"{where} did not improve significantly: {stats}"
        if self.kind == "non_inferiority" and worst < -margin:
            return (f"{where} not shown non-inferior within {margin:.4g}: the CI allows a "
                    f"loss of {-worst:.4g}; {stats}")
        if self.kind == "max_drop" and gain < -margin:
            return f"{where} dropped by {-gain:.4g} (more than {margin:.4g} allowed): {stats}"
        if self.kind == "floor" and row.tuned < self.value:
            return f"{where} is {row.tuned:.4g}, below the floor {self.value:g}: {stats}"
        if self.kind == "ceiling" and row.tuned > self.value:
            return f"{where} is {row.tuned:.4g}, above the ceiling {self.value:g}: {stats}"
        return None


DEFAULT_RULES = (Rule("no_regression", "general", "headline"),)
"""Without a policy: no general task's headline metric may regress significantly."""


def parse_fail_on(expression: str) -> Rule:
    """Parse one ``--fail-on`` expression; raise UsageError explaining the grammar."""
    parts = expression.strip().split(":")
    if len(parts) == 2:
        parts = ["*", *parts]
    if len(parts) != 3 or not all(parts):
        raise _grammar_error(expression)
    select, metric, condition = (p.strip() for p in parts)
    condition = condition.replace(" ", "")
    if condition == "improved":
        return Rule("superiority", select, metric)
    if condition == "not-regressed":
        return Rule("no_regression", select, metric)
    if match := re.fullmatch(rf"noninferior\(({_NUMBER})(%?)\)", condition):
        return Rule("non_inferiority", select, metric, _amount(match), bool(match.group(2)))
    if match := re.fullmatch(rf"(>=|<=)({_NUMBER})", condition):
        kind: RuleKind = "floor" if match.group(1) == ">=" else "ceiling"
        return Rule(kind, select, metric, float(match.group(2)))
    if match := re.fullmatch(rf"({_NUMBER})(%?)", condition):
        return Rule("max_drop", select, metric, _amount(match), bool(match.group(2)))
    raise _grammar_error(expression)


def _amount(match: re.Match[str]) -> float:
    number = float(match.group(1))
    return number / 100 if match.group(2) else number


def _grammar_error(expression: str) -> UsageError:
    return UsageError(
        f"--fail-on {expression!r}: not a gate rule. Write [SELECTOR:]METRIC:CONDITION, e.g. "
        "'acc:5%' (may not drop more than 5%), 'general:headline:noninferior(2%)', "
        "'legal/clause_type:accuracy:>=0.70', 'legal:headline:improved', "
        "'general:headline:not-regressed'.")


@dataclass(frozen=True)
class Policy:
    """Gate rules with the statistical settings they are judged under."""

    rules: tuple[Rule, ...] = DEFAULT_RULES
    alpha: float = 0.05
    correction: str = "holm"


def load_policy(path: Path) -> Policy:
    """Read a policy YAML file; raise UsageError naming the file and key."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--policy {path}: no such file.") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--policy {path}: YAML syntax error ({exc}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise UsageError(f"--policy {path}: must be a mapping with a 'rules' list "
                         "(and optionally 'alpha', 'correction').")
    unknown = set(data) - {"rules", "alpha", "correction"}
    if unknown:
        raise UsageError(f"--policy {path}: unknown key(s) {', '.join(sorted(unknown))}; "
                         "valid keys: rules, alpha, correction.")
    rules = tuple(_rule_from(item, path, i) for i, item in enumerate(data["rules"]))
    return Policy(rules, _alpha(data.get("alpha", 0.05), f"--policy {path}: alpha"),
                  _correction(data.get("correction", "holm"), f"--policy {path}: correction"))


def rules_from_suites(suites: list[tuple[str, list[Any]]]) -> tuple[Rule, ...]:
    """Rules of the suites' own ``gate:`` sections, each defaulting to its own suite."""
    rules: list[Rule] = []
    for suite, items in suites:
        for index, item in enumerate(items):
            if isinstance(item, str) and item.count(":") == 1:
                item = f"{suite}:{item}"
            elif isinstance(item, dict):
                item = {"select": suite, **item}
            rules.append(_rule_from(item, Path(f"suite {suite} gate"), index))
    return tuple(rules)


def policy_for(tuned: RunRecord, extra: tuple[Rule, ...] = ()) -> Policy:
    """The policy of a comparison without a policy file: the ``extra`` (``--fail-on``) rules
    if any, else the suites' own ``gate:`` rules, else DEFAULT_RULES."""
    own = rules_from_suites([(s.name, s.gate) for s in tuned.suites if s.gate])
    return Policy(rules=extra or own) if extra or own else Policy()


def _rule_from(item: Any, path: Path, index: int) -> Rule:
    if isinstance(item, str):
        return parse_fail_on(item)
    where = f"--policy {path}: rules[{index}]"
    if not isinstance(item, dict) or item.get("rule") not in RULE_KINDS:
        raise UsageError(f"{where}: needs 'rule', one of {', '.join(RULE_KINDS)} (or a "
                         "--fail-on string such as 'acc:5%').")
    allowed = {"rule", "select", "metric", "margin", "min", "max", "relative"}
    if extra := set(item) - allowed:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(extra))}; valid: "
                         f"{', '.join(sorted(allowed))}.")
    value = item.get("margin", item.get("min", item.get("max", 0.0)))
    try:
        return Rule(item["rule"], str(item.get("select", "*")), str(item.get("metric", "headline")),
                    float(value), bool(item.get("relative", False)))
    except (TypeError, ValueError):
        raise UsageError(f"{where}: margin/min/max must be a number.") from None


def _alpha(value: Any, where: str) -> float:
    if not isinstance(value, (int, float)) or not 0 < value < 1:
        raise UsageError(f"{where} {value!r}: must be a number between 0 and 1.")
    return float(value)


def _correction(value: Any, where: str) -> str:
    if value not in ("holm", "bh"):
        raise UsageError(f"{where} {value!r}: must be 'holm' or 'bh'.")
    return str(value)
