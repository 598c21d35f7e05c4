"""Hugging Face ``evaluate`` modules as metrics: ``metrics: ["evaluate:PATH_OR_ID"]``.

PATH is a local module, a folder holding ``<folder>.py`` or a script ``x.py``; a relative
path is resolved against the suite folder (``evaluate:metrics/token_f1``). It loads offline.
Anything else is an id that ``evaluate.load`` finds itself (a module it has cached before).
``evaluate`` is imported only when a task names such a metric.

How the value is formed (``metric_args: {"evaluate:PATH": {...}}``,
:class:`ftguard.suite.metric_args.EvaluateArgs`, or the module's own class attributes
``ftguard_corpus`` / ``ftguard_higher_is_better``):

- by default the metric is a **mean of per-item values**: ``compute()`` on each item alone
  (one prediction, its references); the task value is their mean, compared item by item
  like any mean metric. Right for accuracy-like modules; a module that is not an average of
  items (F1 over a corpus, BLEU) must be declared ``corpus`` -- ftguard does not guess from
  the values.
- declared ``corpus``: the value is ``compute()`` on all items; its interval and the paired
  swap test recompute it on every bootstrap resample and swap
  (:mod:`ftguard.metrics.recompute`, the set machinery that equal-mass ECE uses). Those
  calls, thousands per comparison, and the value itself go straight to the module's
  ``_compute`` (what ``compute()`` runs after gathering its inputs into a table); the
  module's ``compute()`` on the same inputs gives the same value (tests check it).

References are passed as the module's features ask: a list per item when its
``references`` feature is a sequence, else the item's first reference. The record names the
module (its resolved path or id) and, for a local module, the sha256 of its files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from ftguard.metrics.base import Metric, MetricLoadError, MetricSource, ScoredItem


def evaluate_metric(name: str, given: str, base: Path | None,
                    args: Mapping[str, Any]) -> Metric:
    """The registry entry of ``evaluate:GIVEN`` under the task's declaration ``args``."""
    from pydantic import ValidationError

    from ftguard.suite.metric_args import EvaluateArgs

    try:
        declared = EvaluateArgs.model_validate(dict(args))
    except ValidationError as exc:
        raise MetricLoadError(f"metric_args for it: {exc.errors()[0]['msg']}") from None
    location, version = _location(given, base)
    module = _load(location)
    corpus = declared.corpus if declared.corpus is not None else bool(
        getattr(module, "ftguard_corpus", False))
    higher = declared.higher_is_better if declared.higher_is_better is not None else bool(
        getattr(module, "ftguard_higher_is_better", True))
    reader = _Reader(module, declared.key, dict(declared.compute))
    source = MetricSource(location, None if version else "evaluate",
                          version or _evaluate_version())
    description = (f"evaluate module {location}"
                   f"{f' [{declared.key}]' if declared.key else ''}"
                   f"{f' {declared.compute}' if declared.compute else ''}")
    kinds = ("generate", "choice", "classify")
    if corpus:
        return Metric(name, higher, kinds, "set", False, description + " (corpus)",
                      bounds=None, batch=reader.check_corpus, source=source,
                      recompute=reader.recompute)
    return Metric(name, higher, kinds, "mean", declared.binary, description, bounds=None,
                  batch=reader.per_item, source=source)


def _location(given: str, base: Path | None) -> tuple[str, str | None]:
    """``(path or id, content hash)``: a local module's resolved path and the sha256 of its
    files, or an id and None."""
    path = Path(given).expanduser()
    looks_local = path.suffix == ".py" or "/" in given or given.startswith(".")
    if looks_local and not path.is_absolute():
        if base is None:  # never the working directory: the suite's folder or nothing
            raise MetricLoadError(f"'{given}' is relative to a suite folder; load the suite")
        path = base / path
    if path.exists():
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*.py"))
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.read_bytes())
        return str(path.resolve()), digest.hexdigest()[:16]
    if looks_local:
        where = f" (relative to the suite folder {base})" if base is not None else ""
        raise MetricLoadError(f"no evaluate module at '{given}'{where}: give a folder holding "
                              "<folder>.py or a script path, relative to the suite folder")
    return given, None


@cache
def _load(location: str) -> Any:
    try:
        import evaluate

        from ftguard.quiet import quiet

        with quiet():
            # online-only for an id that evaluate has not cached (the Hub); a local module
            # path, as the suites and tests use, loads offline
            return evaluate.load(location)
    except Exception as exc:  # noqa: BLE001 - evaluate raises many kinds
        from ftguard.errors import first_line

        hint = "" if Path(location).exists() else (
            " An id loads from the Hugging Face Hub unless evaluate has cached it: give the "
            "module's local folder or script instead to run offline.")
        raise MetricLoadError(f"evaluate.load({location!r}) failed: {type(exc).__name__}: "
                              f"{first_line(exc).rstrip('.')}.{hint}") from None


def _evaluate_version() -> str:
    from importlib.metadata import version

    return version("evaluate")


class _Reader:
    """Calls one loaded module and reads its value out of ``compute()``'s result."""

    def __init__(self, module: Any, key: str | None, kwargs: dict[str, Any]) -> None:
        self.module, self.key, self.kwargs = module, key, kwargs
        self.listed = _references_listed(module)

    def _value(self, result: Mapping[str, Any] | None) -> float:
        result = dict(result or {})
        key = self.key or (next(iter(result)) if len(result) == 1 else self.module.name)
        if key not in result:
            raise ValueError(f"compute() returned {sorted(result)}; name the metric with "
                             "metric_args key")
        return float(result[key])

    def _refs(self, refs: Sequence[tuple[str, ...]]) -> list[Any]:
        return [list(r) if self.listed else r[0] for r in refs]

    def compute(self, predictions: list[str], refs: Sequence[tuple[str, ...]]) -> float:
        return self._value(self.module.compute(predictions=predictions,
                                               references=self._refs(refs), **self.kwargs))

    def recompute(self, predictions: list[str], refs: list[tuple[str, ...]]) -> float:
        return self._value(self.module._compute(predictions=predictions,
                                                references=self._refs(refs), **self.kwargs))

    def per_item(self, items: Sequence[ScoredItem], args: Mapping[str, Any],
                 names: Sequence[str]) -> dict[str, list[float]]:
        from ftguard.metrics.user import ItemFailure

        values = []
        for item in items:
            try:
                values.append(self.compute([item.prediction], [item.references]))
            except Exception as exc:
                from ftguard.errors import first_line

                raise ItemFailure(item.id, f"{type(exc).__name__}: {first_line(exc)}") from exc
        return {name: values for name in names}

    def check_corpus(self, items: Sequence[ScoredItem], args: Mapping[str, Any],
                     names: Sequence[str]) -> dict[str, list[float]]:
        """A corpus module's value on all items, computed once so that a module that fails
        fails here, naming the task; nothing is kept per item."""
        import math

        value = self.compute([i.prediction for i in items], [i.references for i in items])
        if not math.isfinite(value):
            raise ValueError(f"compute() gave {value} on the task's items")
        return {name: [] for name in names}


def _references_listed(module: Any) -> bool:
    """Whether the module's ``references`` feature is a sequence (several per item)."""
    features = module.features
    for candidate in features if isinstance(features, list) else [features]:
        feature = candidate.get("references") if hasattr(candidate, "get") else None
        if feature is not None:
            return isinstance(feature, list) or type(feature).__name__ in (
                "Sequence", "List", "LargeList")
    return False
