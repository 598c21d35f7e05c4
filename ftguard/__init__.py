"""ftguard: gate a fine-tuned language model against its base.

The public API. Names are imported on first use, so ``ftguard --help`` and the commands that
need no model (validate, compare, report) do not pay for the evaluation engine; torch,
transformers and peft are imported only when a model is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftguard.api import evaluate, load_suites
    from ftguard.compare import compare
    from ftguard.engine.settings import RunSettings
    from ftguard.errors import FtguardError
    from ftguard.gate import load_policy, parse_rule, resolve_policy
    from ftguard.metrics.user import metric
    from ftguard.models.load import LoadOptions
    from ftguard.record import RunRecord, read_run, write_run

_HOMES = {"evaluate": "ftguard.api", "load_suites": "ftguard.api",
          "RunSettings": "ftguard.engine.settings", "FtguardError": "ftguard.errors",
          "LoadOptions": "ftguard.models.load", "RunRecord": "ftguard.record",
          "read_run": "ftguard.record", "write_run": "ftguard.record",
          "compare": "ftguard.compare", "resolve_policy": "ftguard.gate",
          "parse_rule": "ftguard.gate", "load_policy": "ftguard.gate",
          "metric": "ftguard.metrics.user"}

__all__ = ["FtguardError", "LoadOptions", "RunRecord", "RunSettings", "compare", "evaluate",
           "load_policy", "load_suites", "metric", "parse_rule", "read_run", "resolve_policy",
           "write_run"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'ftguard' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
