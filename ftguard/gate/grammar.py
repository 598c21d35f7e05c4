"""Parsing the rule grammar: ``[SELECTOR:]METRIC:CONDITION`` strings and policy mappings
``{select, metric, rule, margin|min|max}`` (see :mod:`ftguard.gate`)."""

from __future__ import annotations

import math
import re
from typing import Any

from ftguard.errors import UsageError
from ftguard.gate.rules import CONDITIONS, Rule

_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_SIGNED = r"[-+]?" + _NUMBER
_GRAMMAR = ("Write [SELECTOR:]METRIC:CONDITION, e.g. 'acc:5%' (may not drop more than 5%), "
            "'general:headline:noninferior(2%)', 'legal/clause_type:accuracy:>=0.70', "
            "'legal:headline:improved', '*:headline:not-regressed'.")



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
