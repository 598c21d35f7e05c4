"""Checking a task's metric names while its suite loads: ftguard's own, pass@K & co. against
the task's ``generation.n``, and metrics from outside ftguard, each resolved (imported, its
entry point loaded, its evaluate module loaded) and registered, or reported as a problem at
its place in suite.yaml."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from ftguard.errors import Problem
from ftguard.suite.schema import TASK_KINDS
from ftguard.suite.yaml_lines import KeyPath, format_key, line_of


def external_problem(name: str, kind: str, task: dict[str, Any], root: Path) -> str | None:
    """Why the metric ``name`` from outside ftguard cannot serve the raw ``task`` (it cannot
    be loaded, or is for other task kinds), or None once it is loaded and registered."""
    from ftguard.metrics.base import MetricLoadError
    from ftguard.metrics.external import resolve
    from ftguard.metrics.registry import register_external

    raw = task.get("metric_args")
    args = raw.get(name) if isinstance(raw, dict) else None
    try:
        metric = register_external(resolve(name, root, args if isinstance(args, dict) else {}))
    except (MetricLoadError, ValueError) as exc:
        return f"metric '{name}' cannot be loaded: {str(exc).rstrip('.')}."
    if kind not in metric.kinds:
        return (f"metric '{name}' does not apply to {kind} tasks (it is declared for "
                f"{', '.join(metric.kinds)}).")
    return None


def check_metrics(task: dict[str, Any], index: int, lines: dict[KeyPath, int],
                   yaml_path: Path, problems: list[Problem]) -> None:
    """Check the metric names of the raw task at ``index``, appending each problem at its
    place in suite.yaml, so they are reported even when the task's other keys fail."""
    from ftguard.metrics import METRICS, metric_names_for
    from ftguard.metrics.external import is_external
    from ftguard.metrics.sampling import is_sampled, metric_errors
    from ftguard.suite.generation import raw_n

    kind, metrics = task.get("kind"), task.get("metrics")
    if kind not in TASK_KINDS or kind == "lm_eval" or not isinstance(metrics, list):
        return
    valid = metric_names_for(kind)
    for position, name in enumerate(metrics):
        loc: KeyPath = ("tasks", index, "metrics", position)
        if kind == "generate" and isinstance(name, str) and is_sampled(name):  # pass@k & co.
            problems += [Problem(str(yaml_path), line_of(lines, loc), format_key(loc), f"{e}.")
                         for e in metric_errors([name], raw_n(task), METRICS)]
            continue
        if name in valid or not isinstance(name, str):
            continue
        if is_external(name):  # a user metric, an evaluate module: loaded now, located if not
            if (found := external_problem(name, kind, task, yaml_path.parent)) is not None:
                problems.append(Problem(str(yaml_path), line_of(lines, loc), format_key(loc),
                                        found))
            continue
        # a valid name with something after it (f1_score), then ftguard's own, then installed
        own = [v for v in valid if v in METRICS]
        close = sorted((v for v in valid if name.startswith(v)), key=len)[-1:] or \
            difflib.get_close_matches(name, own, n=1, cutoff=0.5) or \
            difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        problems.append(Problem(str(yaml_path), line_of(lines, loc), format_key(loc),
                                f"unknown metric '{name}' for a {kind} task.{hint} "
                                f"Valid metrics: {', '.join(valid)}"
                                + (", pass@K, majority@n, mean@n." if kind == "generate" else ".")))
