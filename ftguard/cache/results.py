"""Suite results remembered per model, suite content and settings (``ftguard eval --cache``).

A suite's result is reused only when everything that decides it is the same: the model
fingerprint (weights, tokenizer, adapter, dtype, quantisation), the suite's content hash,
the run settings (limit, subset and per-task subsets, seed, resamples), the tasks selected
(``--tasks``) and the ftguard version (metric definitions). So a CI job that caches
``$FTGUARD_HOME`` re-evaluates only the suites whose files or model changed, and skips
loading the model when nothing did. Entries are written atomically after each suite, so an
interrupted run keeps the suites it finished.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import ValidationError

from ftguard.cache.home import ftguard_home
from ftguard.engine.settings import RunSettings
from ftguard.engine.subsets import subset_for
from ftguard.record import SuiteResult, write_json_atomic
from ftguard.suite import Suite
from ftguard.version import ftguard_version


def cache_key(fingerprint: str, suite: Suite, settings: RunSettings) -> str:
    """sha256 over everything that decides a suite's result."""
    parts = {"model": fingerprint, "suite": suite.hash, "limit": settings.limit,
             "subset": settings.subset, "seed": settings.seed, "resamples": settings.resamples,
             "ftguard": ftguard_version(),
             # results of earlier builds of this version have samples without ``context`` (the
             # exact model input) and no ``skipped`` tasks: not reused
             "record": "context+skipped"}
    own = {t.spec.name: subset_for(settings.subset, settings.task_subset, suite.name, t.spec.name)
           for t in suite.tasks}
    if any(value != settings.subset for value in own.values()):  # per-task overrides apply
        parts["task_subset"] = own
    if len(suite.tasks) < len(suite.spec.tasks):  # --tasks left some out
        parts["tasks"] = [t.spec.name for t in suite.tasks]
    if metrics := _metric_identities(suite):  # user code, evaluate modules, encoders
        parts["metrics"] = metrics
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _metric_identities(suite: Suite) -> dict[str, dict[str, str]]:
    """Per task, the identity of each metric whose code is not ftguard's own or that loads a
    model (a user metric's module and package version, BERTScore's encoder fingerprint):
    a new version of either is a new result."""
    from ftguard.metrics.batch import identities
    from ftguard.metrics.registry import expand_metric_names

    out = {}
    for task in suite.tasks:
        spec = task.spec
        if spec.kind == "lm_eval":
            continue
        names = expand_metric_names(spec.kind, spec.metric_names, spec.labels)
        if found := identities(names, spec.metric_args or {}, sources=True):
            out[spec.name] = found
    return out


def _path(key: str) -> Path:
    return ftguard_home() / "results" / key[:2] / f"{key}.json"


def get(fingerprint: str, suite: Suite, settings: RunSettings) -> SuiteResult | None:
    """The remembered result, or None (also when the entry is unreadable)."""
    path = _path(cache_key(fingerprint, suite, settings))
    try:
        return SuiteResult.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError):
        return None


def put(fingerprint: str, suite: Suite, settings: RunSettings, result: SuiteResult) -> None:
    """Remember ``result``; a cache that cannot be written only costs a re-evaluation."""
    from ftguard.errors import RecordError

    try:
        write_json_atomic(result.model_dump(mode="json"),
                          _path(cache_key(fingerprint, suite, settings)))
    except RecordError:
        pass
