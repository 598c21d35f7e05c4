"""The settings of ``pytest --ftguard``: ``--ftguard-*`` flags, else ``[tool.ftguard]``.

Read once per session by :meth:`ftguard.pytest_session.GateSession.from_config`; paths in
pyproject.toml are relative to it, a bad value is a :class:`~ftguard.errors.UsageError`
naming the flag or key. :func:`refuse_xdist` stops a session pytest-xdist would split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ftguard.errors import UsageError

_FILE_KEYS = ("model", "adapter", "baseline", "policy", "report", "limit", "tasks", "backend",
              "base_url", "api_key_env", "max_concurrency", "strict_power", "allow_unchecked")


@dataclass(frozen=True)
class GateOptions:
    """The plugin's settings: ``--ftguard-*`` flags, else ``[tool.ftguard]`` keys."""

    model: str | None = None
    """Model SPEC (``--ftguard-model`` / ``model``); None = the embedded default."""
    adapter: str | None = None
    """PEFT adapter folder (``--ftguard-adapter`` / ``adapter``)."""
    baseline: Path = Path("baselines")
    """Baseline folder or RunRecord file (``--ftguard-baseline`` / ``baseline``)."""
    policy: Path | None = None
    """Gate policy YAML (``--ftguard-policy`` / ``policy``)."""
    report: Path | None = None
    """HTML report to write (``--ftguard-report`` / ``report``)."""
    limit: int | None = None
    """First N items per task (``--ftguard-limit`` / ``limit``)."""
    tasks: tuple[str, ...] = ()
    """Only these tasks (``--ftguard-tasks`` / ``tasks``): TASK, SUITE/TASK or a glob;
    empty: every task."""
    update_baseline: bool = False
    """Accept the current results as the baseline (``--ftguard-update-baseline``)."""
    backend: str = "hf"
    """``hf`` or ``openai`` (``--ftguard-backend`` / ``backend``)."""
    base_url: str | None = None
    """The server's API root (``--ftguard-base-url`` / ``base_url``)."""
    api_key_env: str | None = None
    """Environment variable with the API key (``--ftguard-api-key-env`` / ``api_key_env``)."""
    max_concurrency: int = 8
    """Requests in flight (``--ftguard-max-concurrency`` / ``max_concurrency``)."""
    strict_power: bool = False
    """Underpowered checks fail (``--ftguard-strict-power`` / ``strict_power``)."""
    allow_unchecked: tuple[str, ...] = ()
    """Rules whose rows may be uncomparable (``--ftguard-allow-unchecked`` / ``allow_unchecked``)."""


def read_options(config: pytest.Config) -> GateOptions:
    """Command-line flags win over ``[tool.ftguard]``; paths in the file are relative to it."""
    table, source = _pyproject_table(config.rootpath / "pyproject.toml")
    here = config.invocation_params.dir

    flags: set[str] = set()

    def pick(key: str) -> tuple[Any, Path] | None:
        flag = config.getoption(f"ftguard_{key}")
        if flag is not None:
            flags.add(key)
            return flag, here
        return (table[key], source.parent) if key in table else None

    def path(key: str) -> Path | None:
        got = pick(key)
        if got is None:
            return None
        value, base = got
        if not isinstance(value, str) or not value:
            raise UsageError(f"[tool.ftguard] {key} in {source}: must be a path string.")
        return base / value

    def model(key: str) -> str | None:  # a SPEC is a path only when it names one
        got = pick(key)
        if got is None:
            return None
        value, base = got
        if not isinstance(value, str) or not value:
            raise UsageError(f"[tool.ftguard] {key} in {source}: must be a string.")
        return str(base / value) if (base / value).exists() and base != here else value

    def text(key: str) -> str | None:
        got = pick(key)
        if got is not None and (not isinstance(got[0], str) or not got[0]):
            raise UsageError(f"[tool.ftguard] {key} in {source}: must be a string.")
        return got[0] if got else None

    def positive(key: str) -> int | None:
        got = pick(key)
        if got is not None and (isinstance(got[0], bool) or not isinstance(got[0], int)
                                or got[0] < 1):
            flag = "--ftguard-" + key.replace("_", "-")
            where = flag if key in flags else f"[tool.ftguard] {key} in {source}"
            raise UsageError(f"{where} {got[0]!r}: must be a positive integer.")
        return got[0] if got else None

    def flag(key: str) -> bool:
        got = pick(key)
        if got is not None and not isinstance(got[0], bool):
            raise UsageError(f"[tool.ftguard] {key} in {source}: must be true or false.")
        return bool(got and got[0])

    def texts(key: str) -> tuple[str, ...]:
        got = pick(key)
        values = [] if got is None else [got[0]] if isinstance(got[0], str) else got[0]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise UsageError(f"[tool.ftguard] {key} in {source}: must be a list of rules.")
        return tuple(values)

    def tasks(key: str) -> tuple[str, ...]:
        from ftguard.engine.tasks import parse_tasks

        got = pick(key)
        if got is None:
            return ()
        values = [got[0]] if isinstance(got[0], str) else got[0]
        where = "{--tasks}" if key in flags else f"[tool.ftguard] {key} in {source}"
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise UsageError(f"{where}: must be a list of task names (TASK or SUITE/TASK).")
        return parse_tasks(values, where)

    backend = text("backend") or "hf"
    if backend not in ("hf", "openai"):
        raise UsageError(f"[tool.ftguard] backend in {source}: {backend!r}; use hf or openai.")
    return GateOptions(model=model("model"), adapter=model("adapter"),
                       baseline=path("baseline") or config.rootpath / "baselines",
                       policy=path("policy"), report=path("report"), limit=positive("limit"),
                       tasks=tasks("tasks"),
                       update_baseline=bool(config.getoption("ftguard_update_baseline")),
                       backend=backend, base_url=text("base_url"),
                       api_key_env=text("api_key_env"),
                       max_concurrency=positive("max_concurrency") or 8,
                       strict_power=flag("strict_power"),
                       allow_unchecked=texts("allow_unchecked"))


def _pyproject_table(path: Path) -> tuple[dict[str, Any], Path]:
    if not path.is_file():
        return {}, path
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            return {}, path
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot be read ({exc}).") from None
    table = data.get("tool", {}).get("ftguard", {})
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.ftguard] must be a table.")
    # Other keys may configure the ftguard CLI; the plugin reads only its own.
    return {k.replace("-", "_"): v for k, v in table.items()
            if k.replace("-", "_") in _FILE_KEYS}, path


def refuse_xdist(config: pytest.Config) -> None:
    """The model is evaluated once per session; xdist workers would each evaluate it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER") or hasattr(config, "workerinput")
    requested = config.pluginmanager.hasplugin("xdist") and (
        bool(getattr(config.option, "numprocesses", None))
        or getattr(config.option, "dist", "no") not in ("no", None))
    if worker or requested:
        raise pytest.UsageError(
            "--ftguard does not run under pytest-xdist: the model is evaluated once per "
            "session and compared as a whole, and each worker would evaluate it again. Run the "
            "ftguard checks in one process (add -n 0 or -p no:xdist).")


__all__ = ["GateOptions", "read_options", "refuse_xdist"]

def resolve_suite_names(config: pytest.Config) -> None:
    """Replace each pytest argument that is not an existing path but names a shipped suite
    (``pytest --ftguard legal``) by that suite's folder; a bare word that is neither is a
    usage error listing the shipped suites. Paths (existing or not) are left to pytest."""
    from ftguard.suite.shipped import looks_like_name, shipped_suites, unknown_suite_problem

    if getattr(config.option, "pyargs", False):
        return
    here = config.invocation_params.dir
    shipped = shipped_suites()
    for index, arg in enumerate(config.args):
        path, sep, rest = arg.partition("::")
        if (here / path).exists() or not looks_like_name(path):
            continue
        if path in shipped:
            config.args[index] = str(shipped[path]) + sep + rest
        else:
            raise pytest.UsageError(f"ftguard: --ftguard {unknown_suite_problem(path)}")
