"""lm-eval tasks by name without the network: where a task is defined, the metrics it
reports, and the built task (or why it cannot be built on this machine).

- :func:`find_task` finds the YAML of an lm-eval task: in a suite's ``lm_eval_include``
  folder, or among lm-eval's ~14,000 built-in tasks. lm-eval's ``TaskManager`` indexes all of
  those on every start (12 s or more); the index of built-in names is written once per
  lm-eval version to ``$FTGUARD_HOME/lmeval/tasks-<version>.json`` and read from there.
  An unknown name, or a group or tag, is a :class:`~ftguard.errors.DataError` with the
  nearest names.
- :func:`metric_names` reads the task YAML (functions not imported) for the metrics lm-eval
  will report, named as the bridge records them (``acc_norm``, ``exact_match,strict-match``).
- :func:`build_task` builds the lm-eval ``Task``, which loads its dataset. A dataset on the
  Hugging Face hub that cannot be reached, or a Python package the task's functions import
  that is not installed, raises :class:`~ftguard.errors.TaskSkipped` with the reason.

``mean=True`` (a suite task's ``lm_eval_aggregation: mean``) replaces every metric's
aggregation with the mean of its per-item values: tinyBenchmarks' tasks aggregate with IRT
estimators that need the ``tinyBenchmarks`` package and parameters it downloads, and a
paired comparison needs per-item scores anyway.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftguard.errors import DataError, TaskSkipped, first_line

INDEX_FORMAT = 1
#: ``datasets`` builders that read local files: a task using one is not a hub dataset.
LOCAL_BUILDERS = frozenset({"json", "csv", "parquet", "text", "arrow", "pandas", "xml", "sql",
                            "generator", "imagefolder", "audiofolder", "webdataset"})
_HUB_OFFLINE = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


@dataclass(frozen=True)
class _Function:
    """A ``!function`` tag of a task YAML, not imported yet."""

    spec: str
    base_dir: Path


def metric_name(metric: str, flt: str) -> str:
    """``acc`` for lm-eval's ``acc,none``; ``exact_match,strict-match`` for other filters."""
    return metric if flt == "none" else f"{metric},{flt}"


@contextmanager
def quiet_lmeval() -> Iterator[None]:
    """lm-eval logs at INFO and warns that ``pretrained`` is not a string (on purpose here)."""
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def lmeval_version() -> str:
    from ftguard.version import package_version

    return package_version("lm_eval") or package_version("lm-eval") or "unknown"


def tasks_dir() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).parent / "tasks"


# -- finding a task ----------------------------------------------------------------------------

def builtin_index() -> dict[str, tuple[str, str | None]]:
    """``{name: (kind, YAML path relative to lm-eval's tasks folder)}`` for every built-in
    task, group and tag (kind ``task``, ``py_task``, ``group`` or ``tag``), cached per lm-eval
    version in ``$FTGUARD_HOME``."""
    from ftguard.cache.home import ftguard_home

    root = tasks_dir()
    path = ftguard_home() / "lmeval" / f"tasks-{lmeval_version()}.json"
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("format") == INDEX_FORMAT and cached.get("tasks_dir") == str(root):
            return {k: (v[0], v[1]) for k, v in cached["entries"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        pass  # absent or unreadable: index again
    from lm_eval.tasks import TaskManager


    with quiet_lmeval():
        index = TaskManager().task_index
    entries = {name: (entry.kind.name.lower(),
                      entry.yaml_path.relative_to(root).as_posix() if entry.yaml_path else None)
               for name, entry in index.items()}
    try:
        from ftguard.atomic import write_text_atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(json.dumps({"format": INDEX_FORMAT, "tasks_dir": str(root),
                                      "entries": entries}), path)
    except OSError:
        pass  # a read-only home: index again next time
    return entries


def find_task(name: str, include: Path | None) -> Path:
    """The YAML file defining lm-eval task ``name``: in ``include`` when given (only there,
    as the bridge runs it), else among lm-eval's built-in tasks."""
    if include is not None:
        from lm_eval.tasks import TaskManager


        with quiet_lmeval():
            index = TaskManager(include_path=str(include), include_defaults=False).task_index
        entries = {n: (e.kind.name.lower(), str(e.yaml_path) if e.yaml_path else None)
                   for n, e in index.items()}
        where = f"lm_eval_include folder {include}"
    else:
        root = tasks_dir()
        entries = {n: (kind, str(root / rel) if rel else None)
                   for n, (kind, rel) in builtin_index().items()}
        where = f"lm-eval {lmeval_version()}'s built-in tasks"
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise DataError(f"lm-eval has no task {name!r} in {where}.{hint}",
                        hint="Check lm_eval_task (names are case-sensitive) and lm_eval_include.")
    kind, yaml_path = entries[name]
    if kind not in ("task", "py_task") or yaml_path is None:
        raise DataError(f"{name!r} is an lm-eval {kind}, not a single task; an ftguard task "
                        "maps to exactly one lm-eval task.",
                        hint="List each lm-eval task of the group as its own ftguard task.")
    return Path(yaml_path)


def lookup_task(name: str, include: Path | None) -> tuple[Path, tuple[str, ...]]:
    """The YAML of lm-eval task ``name`` (:func:`find_task`) and its metrics
    (:func:`metric_names`); every failure is a :class:`~ftguard.errors.DataError`."""
    import yaml

    try:
        path = find_task(name, include)
        return path, metric_names(raw_config(path))
    except ImportError:
        raise DataError("lm_eval tasks need lm-eval, which is not installed.",
                        hint="pip install lm-eval") from None
    except (OSError, ValueError, yaml.YAMLError) as exc:  # a YAML lm-eval indexed that cannot be read now
        raise DataError(f"lm-eval task {name!r}: its YAML cannot be read ({first_line(exc)})."
                        ) from exc


# -- reading its YAML --------------------------------------------------------------------------

def raw_config(path: Path, _seen: frozenset[Path] = frozenset()) -> dict[str, Any]:
    """The task YAML at ``path`` with its ``include`` files merged as lm-eval merges them;
    ``!function`` tags stay unimported (:class:`_Function`)."""
    import yaml

    path = path.resolve()
    if path in _seen:
        raise DataError(f"lm-eval task YAML {path}: include cycle.")
    base = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader

    class Loader(base):  # type: ignore[valid-type, misc]
        pass

    Loader.add_constructor("!function", lambda loader, node: _Function(
        str(loader.construct_scalar(node)), path.parent))
    with path.open("rb") as handle:
        cfg = yaml.load(handle, Loader=Loader)  # a SafeLoader plus one tag
    if not isinstance(cfg, dict):
        raise DataError(f"lm-eval task YAML {path} is not a mapping.")
    includes = cfg.pop("include", None)
    if includes is None:
        return cfg
    merged: dict[str, Any] = {}
    for inc in includes if isinstance(includes, list) else [includes]:
        inc_path = Path(inc) if Path(inc).is_absolute() else path.parent / inc
        included = raw_config(inc_path, _seen | {path})
        included.pop("task_list", None)
        merged.update(included)
    merged.update(cfg)
    return merged


def metric_names(cfg: dict[str, Any]) -> tuple[str, ...]:
    """The metrics lm-eval reports for the task ``cfg``, in its order (filter by filter),
    named as the bridge records them; the first is the task's headline. Empty for a Python
    task class, whose metrics its code decides."""
    if "class" in cfg:
        return ()
    metrics = [str(m["metric"]) for m in cfg.get("metric_list") or []
               if isinstance(m, dict) and isinstance(m.get("metric"), str)]
    if not metrics:
        from lm_eval.api.registry import DEFAULT_METRIC_REGISTRY

        metrics = list(DEFAULT_METRIC_REGISTRY.get(str(cfg.get("output_type")), []))
    filters = [str(f["name"]) for f in cfg.get("filter_list") or []
               if isinstance(f, dict) and "name" in f] or ["none"]
    return tuple(metric_name(m, f) for f in filters for m in metrics)


# -- building it -------------------------------------------------------------------------------

def build_task(name: str, yaml_path: Path, *, mean: bool) -> tuple[Any, Any]:
    """lm-eval's ``Task`` for ``name`` (dataset loaded) and the ``TaskManager`` to run it
    with; :class:`TaskSkipped` when it cannot be built here."""
    cfg = raw_config(yaml_path)
    metrics = metric_names(cfg)
    if mean:
        cfg["metric_list"] = [{**m, "aggregation": "mean"} for m in cfg.get("metric_list") or []]
    try:
        resolved = _resolve(cfg)
    except ImportError as exc:
        package = _missing_module(exc)
        extra = f"pip install 'lm-eval[{name}]'" if name in _lmeval_extras() else \
            f"pip install {package}"
        raise TaskSkipped(f"lm-eval task {name!r} needs the Python package {package!r}, which "
                          f"is not installed ({first_line(exc)}; {extra})", metrics) from exc
    from lm_eval.tasks import TaskManager


    manager = TaskManager(include_defaults=False)
    dataset = resolved.get("dataset_path")
    try:
        with quiet_lmeval():
            task = manager.load([resolved])["tasks"][name]
    except OSError as exc:  # ConnectionError, or FileNotFoundError for a dataset not found
        if not _on_hub(dataset):
            raise
        raise TaskSkipped(f"dataset {dataset} not reachable ({_why_unreachable(exc)})",
                          metrics) from exc
    return task, manager


def _resolve(value: Any) -> Any:
    if isinstance(value, _Function):
        from lm_eval.tasks._yaml_loader import _import_func_in_yml

        return _import_func_in_yml(value.spec, value.base_dir)
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    return value


def _lmeval_extras() -> set[str]:
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        return set(metadata("lm_eval").get_all("Provides-Extra") or [])
    except PackageNotFoundError:
        return set()


def _missing_module(exc: BaseException) -> str:
    """The top-level package whose import failed, from ``exc`` or its causes."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ModuleNotFoundError) and seen.name:
            return seen.name.split(".")[0]
        seen = seen.__cause__ or seen.__context__
    return "?"


def _on_hub(dataset: Any) -> bool:
    """Whether ``dataset_path`` names a Hugging Face hub dataset (not a local builder or path)."""
    return (isinstance(dataset, str) and dataset not in LOCAL_BUILDERS
            and not Path(dataset).expanduser().exists())


def _why_unreachable(exc: BaseException) -> str:
    offline = [f"{var}={os.environ[var]}" for var in _HUB_OFFLINE
               if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")]
    return ", ".join(offline) if offline else first_line(exc)
