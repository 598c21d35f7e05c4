"""Checking a task's metrics from outside ftguard while its suite loads: each is resolved
(imported, its entry point loaded, its evaluate module loaded) and registered, or reported
as a problem at its place in suite.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
