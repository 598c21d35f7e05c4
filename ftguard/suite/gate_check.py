"""A suite's ``gate:`` rules checked against its own tasks and metrics, as located problems."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftguard.errors import Problem
from ftguard.suite.model import Suite, Task
from ftguard.suite.schema import SuiteSpec, TaskSpec
from ftguard.suite.yaml_lines import KeyPath


def gate_problems(data: Any, spec: SuiteSpec | None, valid: list[TaskSpec], root: Path,
                  yaml_path: Path, lines: dict[KeyPath, int], *,
                  loaded: Sequence[Task] = ()) -> list[Problem]:
    """Each rule of the suite's ``gate:`` section that is malformed or selects none of its
    tasks and metrics (selectors are relative to the suite). ``data`` is suite.yaml as read,
    ``spec`` its validated form (None when its keys are wrong), ``valid`` the tasks whose own
    keys are valid: the rules are checked against every declared task, loaded or not
    (``loaded`` tasks with what their loading found, e.g. the metrics of an lm-eval task)."""
    from ftguard.errors import UsageError
    from ftguard.gate import SuiteGate, gateables_of_suites, rule_problem

    view = _gate_view(data, spec, valid)
    if view is None:
        return []
    problems = []
    by_name = {t.name: t for t in loaded}
    tasks = [by_name.get(t.name) or Task(t, []) for t in view.tasks]
    universe = gateables_of_suites([Suite(view, root, tasks, "")])
    for index, item in enumerate(view.gate or []):
        line = lines.get(("gate", index))
        gate = SuiteGate(view.name, (item,), str(yaml_path), (line,))
        try:
            (rule,) = gate.rules()
        except UsageError as exc:
            problems.append(Problem(str(yaml_path), line, f"gate[{index}]",
                                    str(exc).split(": ", 1)[-1]))
            continue
        if why := rule_problem(rule, universe):
            problems.append(Problem(str(yaml_path), line, f"gate[{index}]",
                                    why.split(": ", 1)[-1]))
    return problems


def _gate_view(data: Any, spec: SuiteSpec | None, valid: list[TaskSpec]) -> SuiteSpec | None:
    """What the gate rules are checked against: the spec, or when its keys are wrong, its
    name, role and rules with every task (one whose keys are wrong counts as having any
    metric, so no rule is said to select nothing because of another problem)."""
    if spec is not None:
        return spec
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    raw_tasks = data.get("tasks") if isinstance(data.get("tasks"), list) else []
    by_name = {t.name: t for t in valid}
    tasks = [by_name.get(str(t.get("name"))) or TaskSpec.model_construct(
        name=str(t.get("name")), kind="lm_eval", metrics=[], labels=None)
        for t in raw_tasks if isinstance(t, dict)]
    rules = [r for r in data.get("gate") or [] if isinstance(r, (str, dict))]
    return SuiteSpec.model_construct(name=data["name"], role=data.get("role"), tasks=tasks,
                                     gate=rules or None)
