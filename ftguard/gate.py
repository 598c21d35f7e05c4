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

import difflib
import fnmatch
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftguard.errors import UsageError

if TYPE_CHECKING:
    from ftguard.record import ComparisonRow, RuleResult, RunRecord
    from ftguard.suite import Suite

CONDITIONS: tuple[str, ...] = ("not-regressed", "improved", "noninferior", "max-drop", ">=",
                               "<=")
"""Rule kinds, by their names in the grammar (``max-drop`` is written ``5%`` or ``0.02``)."""
ROLES = ("target", "general")
_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_SIGNED = r"[-+]?" + _NUMBER
_GRAMMAR = ("Write [SELECTOR:]METRIC:CONDITION, e.g. 'acc:5%' (may not drop more than 5%), "
            "'general:headline:noninferior(2%)', 'legal/clause_type:accuracy:>=0.70', "
            "'legal:headline:improved', '*:headline:not-regressed'.")


@dataclass(frozen=True)
class Rule:
    """One gate rule, and where it came from."""

    kind: str
    """One of :data:`CONDITIONS`."""
    select: str = "*"
    """Rows it applies to: ``*``, a role, a suite name, or ``suite/task`` (globs allowed)."""
    metric: str = "headline"
    """A metric name, or ``headline`` (each task's first metric)."""
    value: float = 0.0
    """Margin (noninferior, max-drop) or bound (>=, <=)."""
    relative: bool = False
    """Margin as a fraction of the base value (written ``N%``)."""
    origin: str = "default"
    """Where the rule was written: ``--fail-on``, ``gate.yaml:7``, ``suites/legal/suite.yaml:
    30`` or ``default``. Not part of the rule's identity."""

    @property
    def condition(self) -> str:
        """The condition as the grammar spells it."""
        amount = f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"
        return {"not-regressed": "not-regressed", "improved": "improved",
                "noninferior": f"noninferior({amount})", "max-drop": amount,
                ">=": f">={self.value:g}", "<=": f"<={self.value:g}"}[self.kind]

    @property
    def text(self) -> str:
        """The rule as the grammar spells it: its name on every surface."""
        return f"{self.select}:{self.metric}:{self.condition}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)

    def describe(self) -> str:
        where = "every suite" if self.select == "*" else self.select
        amount = f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"
        what = {
            "not-regressed": "must not regress significantly",
            "improved": "must improve significantly",
            "noninferior": f"must be non-inferior within {amount} (95% CI)",
            "max-drop": f"may not drop by more than {amount}",
            ">=": f"must be at least {self.value:g}",
            "<=": f"must be at most {self.value:g}",
        }[self.kind]
        return f"{where} {self.metric}: {what}"

    # -- selection ---------------------------------------------------------------------

    def selects_task(self, suite: str, role: str, task: str) -> bool:
        if self.select == "*":
            return True
        if "/" in self.select:
            return fnmatch.fnmatchcase(f"{suite}/{task}", self.select)
        return self.select == role or fnmatch.fnmatchcase(suite, self.select)

    def selects(self, row: ComparisonRow) -> bool:
        if not self.selects_task(row.suite, row.role, row.task):
            return False
        return row.headline if self.metric == "headline" else row.metric == self.metric

    # -- judging -----------------------------------------------------------------------

    def margin(self, row: ComparisonRow) -> float:
        """The rule's margin in the row's metric units (0 for rules without one)."""
        if self.kind not in ("noninferior", "max-drop"):
            return 0.0
        return self.value * abs(row.base) if self.relative else self.value

    def check(self, row: ComparisonRow) -> str | None:
        """None when ``row`` passes, else why it fails (one line). The row must have been
        compared item by item (``row.comparable``)."""
        sign = 1.0 if row.higher_is_better else -1.0
        gain = sign * row.delta
        margin = self.margin(row)
        where = f"{row.suite}/{row.task} {row.metric}"
        stats = row_stats(row)
        if self.kind == "not-regressed" and row.verdict == "regressed":
            return f"{where} regressed significantly: {stats}"
        if self.kind == "improved" and row.verdict != "improved":
            return f"{where} did not improve significantly: {stats}"
        if self.kind == "noninferior":
            ends = [sign * v if v is not None else -math.inf for v in (row.ci_low, row.ci_high)]
            if row.ci_low is None or row.ci_high is None:
                ends = [-math.inf]
            worst = min(ends)
            if worst < -margin:
                loss = "any loss" if math.isinf(worst) else f"a loss of {-worst:.4g}"
                return (f"{where} not shown non-inferior within {margin:.4g}: the CI allows "
                        f"{loss}; {stats}")
        if self.kind == "max-drop" and gain < -margin:
            return f"{where} dropped by {-gain:.4g} (more than {margin:.4g} allowed): {stats}"
        if self.kind == ">=" and row.tuned < self.value:
            return f"{where} is {row.tuned:.4g}, below the floor {self.value:g}: {stats}"
        if self.kind == "<=" and row.tuned > self.value:
            return f"{where} is {row.tuned:.4g}, above the ceiling {self.value:g}: {stats}"
        return None

    def underpowered(self, row: ComparisonRow) -> str | None:
        """None when ``row`` could have detected what this rule asks for, else why not (one
        line, with the items it would need)."""
        where = f"{row.suite}/{row.task} {row.metric}"
        if self.kind in (">=", "<="):
            return None
        needed = f"; it needs at least {row.items_needed} items" if row.items_needed else ""
        if not row.testable:
            return (f"{where}: no outcome on n={row.n} items could be significant at alpha"
                    f"{needed}")
        if self.kind in ("noninferior", "max-drop"):
            margin = self.margin(row)
            if row.mde is None or row.mde > margin:
                mde = "no change" if row.mde is None else f"only changes of {row.mde:.4g}"
                return (f"{where}: on n={row.n} items {mde} can be detected (80% power), more "
                        f"than the margin {margin:.4g}"
                        + (f"; {_items_for(row, margin)}" if _items_for(row, margin) else ""))
        return None


def row_stats(row: ComparisonRow) -> str:
    """``base -> tuned (delta, 95% CI, p adjusted)`` of a row, for messages."""
    if not row.comparable:
        return f"{row.base:.4g} -> {row.tuned:.4g} (not compared item by item)"
    return (f"{row.base:.4g} -> {row.tuned:.4g} (delta {row.delta:+.4g}, 95% CI "
            f"{format_ci(row.ci_low, row.ci_high)}, p={row.p_adjusted:.3g} adjusted, "
            f"n={row.n})")


def format_ci(low: float | None, high: float | None) -> str:
    """``[-0.12, +0.03]``; an unbounded end (too few items to bound it) is ``-inf``/``+inf``."""
    lo = "-inf" if low is None else f"{low:+.4g}"
    hi = "+inf" if high is None else f"{high:+.4g}"
    return f"[{lo}, {hi}]"


def _items_for(row: ComparisonRow, margin: float) -> str:
    from ftguard.stats import items_needed_for

    if margin <= 0:
        return ""
    needed = items_needed_for(row.method, row.spread, margin)
    return f"it needs about {needed} items to detect {margin:.4g}" if needed else ""


# -- parsing -------------------------------------------------------------------------------


def parse_rule(expression: str, origin: str = "--fail-on") -> Rule:
    """Parse one ``[SELECTOR:]METRIC:CONDITION``; raise UsageError naming ``origin``."""
    parts = str(expression).strip().split(":")
    if len(parts) == 2:
        parts = ["*", *parts]
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise _grammar_error(expression, origin)
    select, metric, condition = (p.strip() for p in parts)
    if "[" in select:
        raise UsageError(f"{_at(origin)}{expression!r}: slices (SELECTOR[field=value]) are not "
                         "supported by this ftguard; select a suite, role or suite/task.")
    try:
        kind, value, relative = parse_condition(condition.replace(" ", ""))
    except ValueError:
        raise _grammar_error(expression, origin) from None
    return Rule(kind, select, metric, value, relative, origin)


def parse_condition(condition: str) -> tuple[str, float, bool]:
    """``(kind, value, relative)`` of a CONDITION; ValueError when it is not one."""
    if condition in ("not-regressed", "improved"):
        return condition, 0.0, False
    if match := re.fullmatch(rf"noninferior\(({_NUMBER})(%?)\)", condition):
        return "noninferior", *_amount(match)
    if match := re.fullmatch(rf"(>=|<=)({_SIGNED})", condition):
        return match.group(1), _finite(float(match.group(2))), False
    if match := re.fullmatch(rf"({_NUMBER})(%?)", condition):
        return "max-drop", *_amount(match)
    raise ValueError(condition)


def _amount(match: re.Match[str]) -> tuple[float, bool]:
    number = _finite(float(match.group(1)))
    return (number / 100, True) if match.group(2) else (number, False)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(value)
    return value


def _at(origin: str) -> str:
    return f"{origin} " if origin.startswith("--") else f"{origin}: gate rule "


def _grammar_error(expression: object, origin: str) -> UsageError:
    return UsageError(f"{_at(origin)}{expression!r} is not a gate rule. {_GRAMMAR}")


_OLD_NAMES = {"no_regression": "not-regressed", "superiority": "improved",
              "non_inferiority": "noninferior", "max_drop": "max-drop", "floor": ">=",
              "ceiling": "<="}
_BOUND_KEY = {"noninferior": "margin", "max-drop": "margin", ">=": "min", "<=": "max"}


def rule_from_mapping(item: dict[str, Any], origin: str) -> Rule:
    """A policy mapping ``{select, metric, rule, margin|min|max}``."""
    allowed = {"rule", "select", "metric", "margin", "min", "max"}
    if extra := set(item) - allowed:
        raise UsageError(f"{origin}: unknown key(s) {', '.join(sorted(map(str, extra)))}; a "
                         f"rule mapping has {', '.join(sorted(allowed))}.")
    name = item.get("rule")
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{origin}: needs 'rule', one of {', '.join(CONDITIONS)}, or a whole "
                         "condition such as 'noninferior(2%)' or '>=0.7'.")
    name = name.strip()
    if name in _OLD_NAMES:
        raise UsageError(f"{origin}: rule {name!r} is not a condition name; write "
                         f"'{_OLD_NAMES[name]}' (the same name as in --fail-on).")
    select = str(item.get("select", "*")).strip() or "*"
    metric = str(item.get("metric", "headline")).strip() or "headline"
    bounds = [k for k in ("margin", "min", "max") if k in item]
    if name not in CONDITIONS:  # a whole condition: noninferior(2%), 5%, >=0.7
        if bounds:
            raise UsageError(f"{origin}: rule {name!r} already holds its bound; drop "
                             f"'{bounds[0]}'.")
        return parse_rule(f"{select}:{metric}:{name}", origin)
    wanted = _BOUND_KEY.get(name)
    if wanted is None:
        if bounds:
            raise UsageError(f"{origin}: rule {name!r} takes no '{bounds[0]}'.")
        return Rule(name, select, metric, origin=origin)
    if bounds != [wanted]:
        got = f"got {', '.join(bounds)}" if bounds else "it has none"
        raise UsageError(f"{origin}: rule {name!r} needs '{wanted}' (and only it; {got}), e.g. "
                         f"{{rule: '{name}', {wanted}: {'2%' if wanted == 'margin' else 0.7}}}.")
    raw = str(item[wanted]).strip()
    condition = {"noninferior": f"noninferior({raw})", "max-drop": raw, ">=": f">={raw}",
                 "<=": f"<={raw}"}[name]
    try:
        kind, value, relative = parse_condition(condition.replace(" ", ""))
    except ValueError:
        raise UsageError(f"{origin}: {wanted} {item[wanted]!r} must be a finite number"
                         + (" (or N%)" if wanted == "margin" else "") + ".") from None
    return Rule(kind, select, metric, value, relative, origin)


def rule_from(item: Any, origin: str) -> Rule:
    if isinstance(item, str):
        return parse_rule(item, origin)
    if isinstance(item, dict):
        return rule_from_mapping(item, origin)
    raise UsageError(f"{origin}: a gate rule is a string such as 'acc:5%' or a mapping "
                     f"{{select, metric, rule, margin|min|max}}, not {item!r}.")


# -- policies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """Gate rules with the statistical settings they are judged under."""

    rules: tuple[Rule, ...]
    alpha: float = 0.05
    correction: str = "holm"
    strict_power: bool = False
    """Underpowered rules fail the gate (else they are listed and do not fail it)."""
    allow_unchecked: tuple[str, ...] = ()
    """Texts of the rules whose rows may be uncomparable item by item (``*`` = any)."""
    source: str = "default"
    """Where the rules came from, in words."""

    def allows_unchecked(self, rule: Rule) -> bool:
        return "*" in self.allow_unchecked or rule.text in self.allow_unchecked


DEFAULT_RULES = (Rule("not-regressed", "*", "headline"),)
"""Without any rules: no headline metric of any suite, target or general, may regress
significantly (gated rows are Holm-adjusted within each role, see :mod:`ftguard.compare`)."""


@dataclass(frozen=True)
class PolicyFile:
    """What a ``--policy`` YAML file says (settings left None where it is silent)."""

    path: Path
    rules: tuple[Rule, ...]
    alpha: float | None = None
    correction: str | None = None
    strict_power: bool | None = None
    allow_unchecked: tuple[str, ...] = ()


_POLICY_KEYS = ("rules", "alpha", "correction", "strict_power", "allow_unchecked")


def load_policy(path: Path) -> PolicyFile:
    """Read a policy YAML file; raise UsageError naming the file, line and key."""
    from ftguard.suite.yaml_lines import LocatedYAMLError, load_yaml_with_lines

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--policy {path}: no such file." if not path.exists() else
                         f"--policy {path}: not a regular file.",
                         hint="Give a YAML file with a 'rules' list.")
    try:
        data, lines = load_yaml_with_lines(path)
    except LocatedYAMLError as exc:
        raise UsageError(f"--policy {exc.problem}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"--policy {path}: cannot be read ({exc}).") from None
    where = f"--policy {path}"
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise UsageError(f"{where}: must be a mapping with a 'rules' list (and optionally "
                         f"{', '.join(_POLICY_KEYS[1:])}).")
    if unknown := set(data) - set(_POLICY_KEYS):
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                         f"valid keys: {', '.join(_POLICY_KEYS)}.")
    if not data["rules"]:
        raise UsageError(f"{where}:{lines.get(('rules',), 1)}: 'rules' is empty, so nothing "
                         "would be gated.", hint="List at least one rule, or drop --policy to "
                                                 "use the default gate.")
    rules = tuple(rule_from(item, f"{path}:{lines.get(('rules', i), '?')}")
                  for i, item in enumerate(data["rules"]))
    strict = data.get("strict_power")
    if strict is not None and not isinstance(strict, bool):
        raise UsageError(f"{where}: strict_power {strict!r} must be true or false.")
    allow = data.get("allow_unchecked", [])
    if isinstance(allow, str):
        allow = [allow]
    if not isinstance(allow, list):
        raise UsageError(f"{where}: allow_unchecked must be a list of rules.")
    return PolicyFile(path, rules,
                      _alpha(data["alpha"], f"{where}: alpha") if "alpha" in data else None,
                      _correction(data["correction"], f"{where}: correction")
                      if "correction" in data else None, strict,
                      tuple(_allowed(a, f"{where}: allow_unchecked") for a in allow))


def _allowed(text: Any, origin: str) -> str:
    return "*" if str(text).strip() == "*" else parse_rule(str(text), origin).text


@dataclass(frozen=True)
class SuiteGate:
    """A suite's own ``gate:`` section, with the file and lines it was written on."""

    suite: str
    items: tuple[Any, ...]
    file: str | None = None
    lines: tuple[int | None, ...] = ()

    def rules(self) -> tuple[Rule, ...]:
        """The rules, their selectors made relative to this suite."""
        out = []
        for i, item in enumerate(self.items):
            line = self.lines[i] if i < len(self.lines) else None
            origin = (f"{self.file}:{line}" if self.file and line else
                      f"{self.file or 'suite ' + self.suite} gate[{i}]")
            rule = rule_from(item, origin)
            explicit = (isinstance(item, str) and item.count(":") >= 2) or (
                isinstance(item, dict) and "select" in item)
            if explicit and ("/" in rule.select or rule.select in ROLES):
                raise UsageError(
                    f"{origin}: gate rule {rule.text!r}: selectors in a suite's gate: are "
                    f"relative to the suite ({self.suite}); name one of its tasks (globs "
                    "allowed) or '*'.")
            select = self.suite if not explicit or rule.select == "*" else \
                f"{self.suite}/{rule.select}"
            out.append(replace(rule, select=select))
        return tuple(out)


def suite_gates_of_run(run: RunRecord) -> list[SuiteGate]:
    """The ``gate:`` sections recorded in a RunRecord (lines read from its suite.yaml when
    that file is still there and holds the same section)."""
    gates = []
    for suite in run.suites:
        if not suite.gate:
            continue
        file, lines = _gate_lines(suite.path, suite.gate)
        gates.append(SuiteGate(suite.name, tuple(suite.gate), file, lines))
    return gates


def suite_gates_of_suites(suites: Iterable[Suite]) -> list[SuiteGate]:
    out = []
    for suite in suites:
        if suite.spec.gate:
            file, lines = _gate_lines(str(suite.root), suite.spec.gate)
            out.append(SuiteGate(suite.name, tuple(suite.spec.gate), file, lines))
    return out


def _gate_lines(folder: str | None, items: list[Any]) -> tuple[str | None, tuple[int | None, ...]]:
    if not folder:
        return None, ()
    path = Path(folder) / "suite.yaml"
    try:
        from ftguard.suite.yaml_lines import load_yaml_with_lines

        data, lines = load_yaml_with_lines(path)
    except Exception:  # noqa: BLE001 -- the file moved or changed: name it without lines
        return str(path), ()
    if not isinstance(data, dict) or data.get("gate") != items:
        return str(path), ()
    return str(path), tuple(lines.get(("gate", i)) for i in range(len(items)))


def resolve_policy(*, fail_on: Sequence[Rule] = (), policy: PolicyFile | None = None,
                   suite_gates: Sequence[SuiteGate] = (), alpha: float | None = None,
                   correction: str | None = None, strict_power: bool | None = None,
                   allow_unchecked: Sequence[str] = ()) -> Policy:
    """The policy a comparison is judged under; every surface calls this.

    Rules: ``--fail-on`` flags, else the policy file's, else the suites' ``gate:`` sections,
    else :data:`DEFAULT_RULES`. Settings: flags, else the policy file, else the defaults
    (alpha 0.05, Holm, underpowered rules listed but not failing).
    """
    own = tuple(rule for gate in suite_gates for rule in gate.rules())
    if fail_on:
        rules, source = tuple(fail_on), "--fail-on"
    elif policy is not None:
        rules, source = policy.rules, f"--policy {policy.path}"
    elif own:
        names = ", ".join(dict.fromkeys(g.suite for g in suite_gates if g.items))
        rules, source = own, f"the gate: section of suite(s) {names}"
    else:
        rules, source = DEFAULT_RULES, "default (every headline must not regress)"
    file = policy or PolicyFile(Path(), ())
    chosen = Policy(
        rules=tuple(dict.fromkeys(rules)),
        alpha=alpha if alpha is not None else file.alpha or 0.05,
        correction=correction or file.correction or "holm",
        strict_power=strict_power if strict_power is not None else bool(file.strict_power),
        allow_unchecked=tuple(dict.fromkeys([*file.allow_unchecked,
                                             *(_allowed(a, "--allow-unchecked")
                                               for a in allow_unchecked)])),
        source=source)
    texts = {r.text for r in chosen.rules}
    for name in chosen.allow_unchecked:
        if name != "*" and name not in texts:
            raise UsageError(f"--allow-unchecked {name!r}: no such rule in the gate ({source}); "
                             f"its rules are: {', '.join(sorted(texts))}.")
    return chosen


# -- resolution against the runs -------------------------------------------------------------


@dataclass(frozen=True)
class Gateable:
    """A task the gate can select, with its metrics (first = headline)."""

    suite: str
    role: str
    task: str
    metrics: tuple[str, ...]
    open: bool = False
    """Metrics not known before evaluation (lm-eval tasks): any name may match."""


def gateables_of_run(run: RunRecord) -> list[Gateable]:
    return [Gateable(s.name, s.role, t.name, tuple(t.metrics)) for s in run.suites
            for t in s.tasks]


def gateables_of_suites(suites: Iterable[Suite]) -> list[Gateable]:
    from ftguard.metrics.registry import expand_metric_names

    out = []
    for suite in suites:
        for task in suite.tasks:
            spec = task.spec
            try:
                metrics = tuple(expand_metric_names(spec.kind, spec.metric_names, spec.labels))
            except (KeyError, ValueError, TypeError):  # lm_eval tasks: known after evaluation
                metrics = ()
            out.append(Gateable(suite.name, suite.spec.role, task.name, metrics,
                                open=not metrics))
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
        wanted = rule.select.split("/")[-1]
        by_task = {g.task: f"{g.suite}/{g.task}" for g in universe}
        close = list(dict.fromkeys(_nearest(rule.select, names + list(ROLES)) + [
            by_task[t] for t in _nearest(wanted, sorted(by_task))]))[:3]
        return (f"{head}: selector {rule.select!r} matches no suite or task of the runs "
                f"(suites: {', '.join(sorted({g.suite for g in universe})) or 'none'}; roles: "
                f"{', '.join(sorted({g.role for g in universe})) or 'none'})" + _did_you(close))
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


# -- judging ---------------------------------------------------------------------------------


@dataclass
class _Tally:
    failures: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    underpowered: list[str] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)


def judge(rows: Sequence[ComparisonRow], policy: Policy) -> list[RuleResult]:
    """One outcome per rule of ``policy`` over the compared ``rows`` (marking each row's
    ``reason`` and ``rules``): ``failed`` when a row breaks it, else ``unchecked`` when a row
    could not be compared item by item, else ``underpowered`` when a row could not have
    detected what the rule asks for, else ``passed``."""
    from ftguard.record import RuleResult

    results = []
    for rule in policy.rules:
        tally = _Tally()
        for row in rows:
            if not rule.selects(row):
                continue
            row.rules.append(rule.text)
            name = f"{row.suite}/{row.task} {row.metric}"
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
    name = f"{row.suite}/{row.task} {row.metric}"
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


def _alpha(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise UsageError(f"{where} {value!r}: must be a number between 0 and 1.")
    return float(value)


def _correction(value: Any, where: str) -> str:
    if value not in ("holm", "bh"):
        raise UsageError(f"{where} {value!r}: must be 'holm' or 'bh'.")
    return str(value)
