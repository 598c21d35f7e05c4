"""Policies: where a comparison's rules come from and the settings they are judged under.
:func:`resolve_policy` is the one resolver every surface calls."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftguard.errors import UsageError
from ftguard.gate.grammar import _show, parse_rule, rule_from
from ftguard.gate.rules import ROLES, Rule

if TYPE_CHECKING:
    from ftguard.record import RunRecord
    from ftguard.suite import Suite


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
    from_suites: bool = False
    """The rules are the suites' own ``gate:`` sections (checked against each suite's tasks
    when it was loaded)."""

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
    return PolicyFile(path, rules,
                      _alpha(data["alpha"], f"{where}: alpha") if "alpha" in data else None,
                      _correction(data["correction"], f"{where}: correction")
                      if "correction" in data else None, strict,
                      _file_allowed(data.get("allow_unchecked", []), rules, path, lines))


def _file_allowed(allow: Any, rules: tuple[Rule, ...], path: Path,
                  lines: dict[Any, int]) -> tuple[str, ...]:
    """A policy file's ``allow_unchecked``: ``*`` or rules of the file, each checked with
    the file and line it is written on."""
    key: tuple[Any, ...] = ("allow_unchecked",)
    items = [(allow, lines.get(key))] if isinstance(allow, str) else [
        (a, lines.get((*key, i), lines.get(key))) for i, a in enumerate(allow)
    ] if isinstance(allow, list) else None
    if items is None:
        raise UsageError(f"{path}:{lines.get(key, 1)}: allow_unchecked must be a list of the "
                         "file's rules (or '*').")
    texts = {r.text for r in rules}
    out = []
    for item, line in items:
        origin = f"{path}:{line or '?'}"
        if not isinstance(item, str):
            raise UsageError(f"{origin}: allow_unchecked lists rules as strings, not "
                             f"{_show(item)}.")
        name = _allowed(item, origin)
        if name != "*" and name not in texts:
            raise UsageError(f"{origin}: allow_unchecked {_show(item)} is not a rule of this file; "
                             f"its rules are: {', '.join(sorted(texts))}.")
        out.append(name)
    return tuple(out)


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
            if explicit and ("/" in rule.task_select or rule.task_select in ROLES):
                raise UsageError(
                    f"{origin}: gate rule {rule.text!r}: selectors in a suite's gate: are "
                    f"relative to the suite ({self.suite}); name one of its tasks (globs "
                    "allowed) or '*'.")
            select = self.suite if not explicit or rule.task_select == "*" else \
                f"{self.suite}/{rule.task_select}"
            sliced = f"[{rule.slice_select}]" if rule.slice_select is not None else ""
            out.append(replace(rule, select=select + sliced))
        return tuple(out)


def suite_gates_of_run(run: RunRecord) -> list[SuiteGate]:
    """The ``gate:`` sections recorded in a RunRecord (lines read from its suite.yaml when
    that file is still there and holds the same section), and an empty one (``items`` ())
    for each suite without a section: the default rule applies to that suite."""
    gates = []
    for suite in run.suites:
        file, lines = _gate_lines(suite.path, suite.gate) if suite.gate else (None, ())
        gates.append(SuiteGate(suite.name, tuple(suite.gate or ()), file, lines))
    return gates


def suite_gates_of_suites(suites: Iterable[Suite]) -> list[SuiteGate]:
    """As :func:`suite_gates_of_run`, from loaded suites."""
    out = []
    for suite in suites:
        gate = suite.spec.gate or []
        file, lines = _gate_lines(str(suite.root), gate) if gate else (None, ())
        out.append(SuiteGate(suite.name, tuple(gate), file, lines))
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
    else :data:`DEFAULT_RULES`. When only some suites have a ``gate:`` section, each of the
    others (an empty :class:`SuiteGate`) is gated by the default rule on its own rows: adding
    a gated behaviour suite never ungates the rest. Settings: flags, else the policy file,
    else the defaults (alpha 0.05, Holm, underpowered rules listed but not failing).
    """
    own = tuple(rule for gate in suite_gates for rule in gate.rules())
    if fail_on:
        rules, source = tuple(fail_on), "--fail-on"
    elif policy is not None:
        rules, source = policy.rules, f"--policy {policy.path}"
    elif own:
        names = ", ".join(dict.fromkeys(g.suite for g in suite_gates if g.items))
        rest = list(dict.fromkeys(g.suite for g in suite_gates if not g.items))
        rules = own + tuple(replace(rule, select=suite) for suite in rest
                            for rule in DEFAULT_RULES)
        source = f"the gate: section of suite(s) {names}" + (
            f"; default (every headline must not regress) for {', '.join(rest)}" if rest else "")
    else:
        rules, source = DEFAULT_RULES, "default (every headline must not regress)"
    file = policy or PolicyFile(Path(), ())
    chosen = Policy(
        rules=tuple(dict.fromkeys(rules)),
        alpha=alpha if alpha is not None else file.alpha or 0.05,
        correction=correction or file.correction or "holm",
        strict_power=strict_power if strict_power is not None else bool(file.strict_power),
        allow_unchecked=(),
        source=source,
        from_suites=not fail_on and policy is None and bool(own))
    texts = {r.text for r in chosen.rules}
    flags = [_allowed(a, "--allow-unchecked") for a in allow_unchecked]
    for name in flags:
        if name != "*" and name not in texts:
            raise UsageError(f"--allow-unchecked {name!r}: no such rule in the gate ({source}); "
                             f"its rules are: {', '.join(sorted(texts))}.")
    # The file's names were checked against its rules; they apply where those rules do.
    from_file = [n for n in file.allow_unchecked if n == "*" or n in texts]
    return replace(chosen, allow_unchecked=tuple(dict.fromkeys([*from_file, *flags])))


def _alpha(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise UsageError(f"{where} {value!r}: must be a number between 0 and 1.")
    return float(value)


def _correction(value: Any, where: str) -> str:
    if value not in ("holm", "bh"):
        raise UsageError(f"{where} {value!r}: must be 'holm' or 'bh'.")
    return str(value)
