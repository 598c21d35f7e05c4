"""Parsing the rule grammar: ``[SELECTOR:]METRIC:CONDITION`` strings and policy mappings
``{select, metric, rule, margin|min|max}`` (see :mod:`ftguard.gate`)."""

from __future__ import annotations

import math
import re
from typing import Any

from ftguard.errors import UsageError
from ftguard.gate.rules import CONDITIONS, Rule

# Unambiguous (no nested quantifiers over the same digits), so matching stays linear.
_NUMBER = r"(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_SIGNED = r"[-+]?" + _NUMBER
_GRAMMAR = ("Write [SELECTOR:]METRIC:CONDITION, e.g. 'acc:5%' (may not drop more than 5%), "
            "'general:headline:noninferior(2%)', 'legal/clause_type:accuracy:>=0.70', "
            "'legal:headline:improved', '*:headline:not-regressed'.")
MAX_LENGTH = 500
"""Longest rule text read (a rule is a few dozen characters)."""


def parse_rule(expression: str, origin: str = "--fail-on") -> Rule:
    """Parse one ``[SELECTOR:]METRIC:CONDITION``; raise UsageError naming ``origin``."""
    text = str(expression)
    if len(text) > MAX_LENGTH:
        raise UsageError(f"{_at(origin)}{_show(text)} is {len(text):,} characters long, not a "
                         f"gate rule. {_GRAMMAR}")
    parts = text.strip().split(":")
    if len(parts) == 2:
        parts = ["*", *parts]
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise _grammar_error(expression, origin)
    select, metric, condition = (p.strip() for p in parts)
    _check_select(select, f"{_at(origin)}{_show(text)}")
    try:
        kind, value, relative = parse_condition(condition.replace(" ", ""))
    except ValueError:
        raise _grammar_error(expression, origin) from None
    return Rule(kind, select, metric, value, relative, origin)


_SLICED = re.compile(r"[^\[\]]*\[[A-Za-z0-9_.*?-]+=[^\[\]=][^\[\]]*\]")


def _check_select(select: str, where: str) -> None:
    """A selector with a slice part is ``SELECTOR[FIELD=VALUE]`` (globs allowed in both)."""
    if ("[" in select or "]" in select) and not _SLICED.fullmatch(select):
        raise UsageError(f"{where}: a slice is selected as SELECTOR[FIELD=VALUE], e.g. "
                         "'legal/doctrine_mc[topic=contracts]' or 'general[topic=hist*]' (one "
                         "slice part, at the end; the field and value as the items have them).")


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
    """``--fail-on `` for a flag, ``gate.yaml:3: gate rule `` for a file's line."""
    return f"{origin} " if re.fullmatch(r"--[a-z][a-z-]*", origin) else f"{origin}: gate rule "


def _show(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (messages stay one paragraph)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _grammar_error(expression: object, origin: str) -> UsageError:
    return UsageError(f"{_at(origin)}{_show(expression)} is not a gate rule. {_GRAMMAR}")


_OLD_NAMES = {"no_regression": "not-regressed", "superiority": "improved",
              "non_inferiority": "noninferior", "max_drop": "max-drop", "floor": ">=",
              "ceiling": "<="}
_BOUND_KEY = {"noninferior": "margin", "max-drop": "margin", ">=": "min", "<=": "max"}


def rule_from_mapping(item: dict[str, Any], origin: str) -> Rule:
    """A policy mapping ``{select, metric, rule, margin|min|max}``."""
    allowed = {"rule", "select", "slice", "metric", "margin", "min", "max"}
    if extra := set(item) - allowed:
        raise UsageError(f"{origin}: unknown key(s) "
                         f"{', '.join(sorted(str(k)[:40] for k in extra))}; a rule mapping "
                         f"has {', '.join(sorted(allowed))}.")
    name = item.get("rule")
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{origin}: needs 'rule', one of {', '.join(CONDITIONS)}, or a whole "
                         "condition such as 'noninferior(2%)' or '>=0.7'.")
    name = name.strip()
    if name in _OLD_NAMES:
        raise UsageError(f"{origin}: rule {name!r} is not a condition name; write "
                         f"'{_OLD_NAMES[name]}' (the same name as in --fail-on).")
    select = _name(item, "select", "*", origin)
    if "slice" in item:  # {select: legal/doctrine_mc, slice: topic=contracts}
        select += f"[{_name(item, 'slice', '', origin)}]"
    metric = _name(item, "metric", "headline", origin)
    _check_select(select, f"{origin}: select {_show(select)}")
    bounds = [k for k in ("margin", "min", "max") if k in item]
    if name not in CONDITIONS:  # a whole condition: noninferior(2%), 5%, >=0.7
        if bounds:
            raise UsageError(f"{origin}: rule {_show(name)} already holds its bound; drop "
                             f"'{bounds[0]}'.")
        try:
            kind, value, relative = parse_condition(name.replace(" ", ""))
        except ValueError:
            raise UsageError(f"{origin}: rule {_show(name)} is not a gate rule condition; write "
                             f"one of {', '.join(CONDITIONS)} (with margin, min or max), or a "
                             "whole condition such as 'noninferior(2%)', '5%' or '>=0.7'.") from None
        return Rule(kind, select, metric, value, relative, origin)
    wanted = _BOUND_KEY.get(name)
    if wanted is None:
        if bounds:
            raise UsageError(f"{origin}: rule {name!r} takes no '{bounds[0]}'.")
        return Rule(name, select, metric, origin=origin)
    if bounds != [wanted]:
        got = f"got {', '.join(bounds)}" if bounds else "it has none"
        raise UsageError(f"{origin}: rule {name!r} needs '{wanted}' (and only it; {got}), e.g. "
                         f"{{rule: '{name}', {wanted}: {'2%' if wanted == 'margin' else 0.7}}}.")
    bound = item[wanted]
    raw = str(bound).strip() if isinstance(bound, str | int | float) and not isinstance(
        bound, bool) else "?"
    condition = {"noninferior": f"noninferior({raw})", "max-drop": raw, ">=": f">={raw}",
                 "<=": f"<={raw}"}[name]
    try:
        kind, value, relative = parse_condition(condition.replace(" ", ""))
    except ValueError:
        what = ("a finite number >= 0, or a percentage such as 2%" if wanted == "margin" else
                "a finite number")
        raise UsageError(f"{origin}: {wanted} {_show(bound)} must be {what}.") from None
    return Rule(kind, select, metric, value, relative, origin)


def _name(item: dict[str, Any], key: str, default: str, origin: str) -> str:
    """``select`` or ``metric`` of a mapping: a name (numbers are names too); a selector
    without ':', a metric with one where it names user code (``mypkg.scoring:citation_ok``,
    ``evaluate:PATH``), which the ``--fail-on`` grammar cannot hold."""
    value = item.get(key, default)
    what = {"select": "a suite, role or suite/task (globs allowed)",
            "slice": "a slice FIELD=VALUE (globs allowed)"}.get(key, "a metric name")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UsageError(f"{origin}: {key} must be {what}, not {_show(value)}.")
    text = str(value).strip() or default
    if (":" in text and key == "select") or len(text) > MAX_LENGTH:
        raise UsageError(f"{origin}: {key} {_show(text)} must be {what}, without ':'.")
    return text


def rule_from(item: Any, origin: str) -> Rule:
    """A rule written as a string or as a policy mapping; UsageError naming ``origin``."""
    if isinstance(item, str):
        return parse_rule(item, origin)
    if isinstance(item, dict):
        return rule_from_mapping(item, origin)
    raise UsageError(f"{origin}: a gate rule is a string such as 'acc:5%' or a mapping "
                     f"{{select, metric, rule, margin|min|max}}, not {_show(item)}.")
