"""Metrics from outside ftguard: resolving the names a suite writes into registry entries.

- ``mypkg.scoring:citation_ok`` -- a callable decorated with :func:`ftguard.metric`, imported
  from the environment (an installed package or ``PYTHONPATH``). Never a file path: user code
  is installed, not read out of a suite folder.
- ``citation_ok`` -- a name registered through the entry-point group ``ftguard.metrics``
  (``[project.entry-points."ftguard.metrics"] citation_ok = "mypkg.scoring:citation_ok"``).
- ``evaluate:PATH_OR_ID`` -- a Hugging Face ``evaluate`` module (:mod:`.hf_evaluate`); a
  relative path is resolved against the suite folder.

Each resolved metric carries its :class:`~ftguard.metrics.base.MetricSource` (module,
distribution, version), which the RunRecord names.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from ftguard.metrics.base import Metric, MetricLoadError, MetricSource

GROUP = "ftguard.metrics"
"""The entry-point group of installed metrics."""
EVALUATE_PREFIX = "evaluate:"


__all__ = ["GROUP", "MetricLoadError", "entry_point_metrics", "is_external", "recorded",
           "resolve", "source_of"]


def is_external(name: str) -> bool:
    """Whether ``name`` names a metric from outside ftguard (an import path, an evaluate
    module, or an installed entry point)."""
    return ":" in name or name in _entry_points()


def resolve(name: str, base: Path | None,
            args: Mapping[str, Any] | None = None) -> Metric:
    """The metric ``name`` stands for; ``base`` is the suite folder (relative evaluate
    paths), ``args`` the task's ``metric_args`` entry for it (an evaluate module's
    declaration). Raises MetricLoadError."""
    if name.startswith(EVALUATE_PREFIX):
        from ftguard.metrics.hf_evaluate import evaluate_metric

        return evaluate_metric(name, name[len(EVALUATE_PREFIX):], base, args or {})
    if ":" in name:
        return _imported(name)
    point = _entry_points().get(name)
    if point is None:
        raise MetricLoadError(f"no metric {name!r} is installed (entry-point group {GROUP})")
    try:
        target = point.load()
    except Exception as exc:  # noqa: BLE001 - any import failure of user code
        raise MetricLoadError(f"the entry point {name} = {point.value!r} (group {GROUP}) "
                              f"cannot be loaded: {_what(exc)}") from None
    return _defined(name, target, point.value.partition(":")[0],
                    f"entry point {name} = {point.value!r}")


def recorded(name: str, task: Any) -> Metric | None:
    """An evaluate metric declared ``corpus`` in a record's ``task`` (a TaskResult), loaded
    again from the source the record names (its resolved path and declaration): ``compare``
    recomputes it without the suite. None for any other metric (mean metrics are compared
    on their recorded per-item values) and when it cannot be loaded."""
    source = (task.metric_sources or {}).get(name)
    recorded_as = task.metrics.get(name)
    if source is None or not name.startswith(EVALUATE_PREFIX) or recorded_as is None or \
            recorded_as.aggregation != "set":
        return None
    import dataclasses

    try:
        found = resolve(EVALUATE_PREFIX + source.module, None, source.args or {})
    except MetricLoadError:
        return None
    return dataclasses.replace(found, name=name)


def _imported(name: str) -> Metric:
    module_name, _, attr = name.partition(":")
    if "/" in module_name or "\\" in module_name or module_name.endswith(".py") or \
            not all(part.isidentifier() for part in module_name.split(".")):
        raise MetricLoadError(f"'{module_name}' is not a Python module name: a user metric is "
                              "named MODULE:FUNCTION of an installed package or one on "
                              "PYTHONPATH (mypkg.scoring:citation_ok), never a file path "
                              "inside the suite; install the package (pip install -e) or "
                              "set PYTHONPATH")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure of user code
        raise MetricLoadError(f"module '{module_name}' cannot be imported: {_what(exc)}; "
                              "install its package or put it on PYTHONPATH") from None
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise MetricLoadError(f"module '{module_name}' has no attribute '{attr}'")
        target = getattr(target, part)
    return _defined(name, target, module_name, name)


def _defined(name: str, target: object, module: str, where: str) -> Metric:
    from ftguard.metrics.user import definition_of

    declared = definition_of(target)
    if declared is None:
        raise MetricLoadError(f"{where} is not a metric: decorate the function with "
                              "@ftguard.metric(higher_is_better=..., binary=...) so its "
                              "direction and kind are declared")
    import dataclasses

    return dataclasses.replace(declared, name=name, source=source_of(module))


def source_of(module: str) -> MetricSource:
    """``module`` with the distribution that installs it and that distribution's version
    (both None for a module on PYTHONPATH)."""
    top = module.split(".")[0]
    for dist in metadata.packages_distributions().get(top, []):
        try:
            return MetricSource(module, dist, metadata.version(dist))
        except metadata.PackageNotFoundError:
            continue
    return MetricSource(module)


@cache
def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {point.name: point for point in metadata.entry_points(group=GROUP)}


@cache
def entry_point_metrics() -> tuple[Metric, ...]:
    """The installed entry-point metrics that load (one that does not is reported when a
    task names it)."""
    out = []
    for name in _entry_points():
        try:
            out.append(resolve(name, None))
        except MetricLoadError:
            continue
    return tuple(out)


def _what(exc: BaseException) -> str:
    from ftguard.errors import first_line

    return f"{type(exc).__name__}: {first_line(exc)}"
