"""lm-eval's built-in task names, read without importing lm-eval or indexing its tasks.

``TaskManager()`` indexes lm-eval's 14k task YAMLs in about 12 s; a suite that names a
built-in task only needs to know the name exists. The ``task:`` keys of those YAML files are
read once per installed lm-eval version (about 3 s) and kept in ``$FTGUARD_HOME``; a test
checks that the names the shipped suites use are tasks of lm-eval's real registry.
"""

from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from importlib import metadata, util
from pathlib import Path

_TASK_KEY = re.compile(r"^task:[ \t]*['\"]?([A-Za-z0-9_][^\s'\"#]*)", re.MULTILINE)


@lru_cache(maxsize=1)
def builtin_tasks() -> dict[str, str] | None:
    """Built-in task name -> its YAML file (relative to lm-eval's tasks folder); None when
    lm-eval is not installed."""
    spec = util.find_spec("lm_eval")
    if spec is None or spec.origin is None:
        return None
    from ftguard.cache.home import ftguard_home

    version = metadata.version("lm_eval")
    cached = ftguard_home() / f"lmeval-tasks-{version}.json"
    try:
        return dict(json.loads(cached.read_text()))
    except (OSError, ValueError):
        pass
    root = Path(spec.origin).parent / "tasks"
    names: dict[str, str] = {}
    for path in sorted(root.rglob("*.yaml")):
        for match in _TASK_KEY.finditer(path.read_text(errors="replace")):
            names.setdefault(match.group(1), path.relative_to(root).as_posix())
    try:
        from ftguard.atomic import write_text_atomic

        cached.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(json.dumps(names, sort_keys=True), cached)
    except OSError:  # a read-only home: index again next time
        pass
    return names


def builtin_task_problem(name: str) -> str | None:
    """Why ``name`` is not a built-in lm-eval task (None when it is, or lm-eval is absent:
    the run then says lm-eval is missing)."""
    names = builtin_tasks()
    if names is None or name in names:
        return None
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return (f"lm-eval {metadata.version('lm_eval')} has no built-in task {name!r}.{hint} "
            "Give its exact name, or lm_eval_include: a folder with your own task YAML.")
