"""pytest plugin: ``pytest --ftguard suites/legal`` gates a model against its accepted baseline.

Registered through the ``pytest11`` entry point, so it loads in every pytest run of an
environment where ftguard is installed. It does nothing unless ``--ftguard`` is given, and
importing it costs nothing beyond pytest itself: the work lives in
:mod:`ftguard.pytest_session`, imported only when the flag is on.

Each hook is a few lines delegating to the :class:`~ftguard.pytest_session.GateSession` kept
in ``config.stash`` (the pytest-benchmark / syrupy pattern).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

_SESSION: pytest.StashKey[Any] = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ftguard", "ftguard: gate a fine-tuned model against its baseline")
    group.addoption("--ftguard", action="store_true", default=False,
                    help="collect every suite.yaml below the given paths: one test per gated "
                         "check (defaults for the options below: [tool.ftguard] in pyproject.toml)")
    group.addoption("--ftguard-model", metavar="SPEC", default=None,
                    help="model to evaluate: HF folder, hub id, smollm2-135m-instruct (default) "
                         "or fake[:SEED]")
    group.addoption("--ftguard-adapter", metavar="DIR", default=None,
                    help="PEFT adapter applied on top of the model")
    group.addoption("--ftguard-baseline", metavar="PATH", default=None,
                    help="baseline folder (with index.json) or a RunRecord file "
                         "(default: baselines/)")
    group.addoption("--ftguard-policy", metavar="FILE", default=None,
                    help="gate policy YAML (default: the suites' gate: sections, else no "
                         "headline metric may regress), as ftguard compare --policy")
    group.addoption("--ftguard-strict-power", action="store_true", default=None,
                    help="fail checks whose rows could not have detected what the rule asks "
                         "for (too few items); by default they are skipped with the reason")
    group.addoption("--ftguard-allow-unchecked", metavar="RULE", action="append", default=None,
                    help="this gate rule may check rows that cannot be compared item by item "
                         "(skipped instead of failed); '*' for every rule")
    group.addoption("--ftguard-report", metavar="FILE", default=None,
                    help="write the self-contained HTML report of the comparison here")
    group.addoption("--ftguard-update-baseline", action="store_true", default=False,
                    help="accept this run's results as the new baseline")
    group.addoption("--ftguard-limit", metavar="N", type=int, default=None,
                    help="score only the first N items of each task")
    group.addoption("--ftguard-tasks", metavar="TASK[,TASK]", action="append", default=None,
                    help="evaluate and gate only these tasks: TASK (that task in every suite "
                         "that has one), SUITE/TASK or a glob; comma-separated or repeated")
    group.addoption("--ftguard-backend", choices=("hf", "openai"), default=None,
                    help="hf: load the model in-process (default); openai: query the "
                         "OpenAI-compatible server at --ftguard-base-url")
    group.addoption("--ftguard-base-url", metavar="URL", default=None,
                    help="the server's API root, e.g. http://127.0.0.1:8000/v1")
    group.addoption("--ftguard-api-key-env", metavar="VAR", default=None,
                    help="environment variable holding the server's API key")
    group.addoption("--ftguard-max-concurrency", metavar="N", type=int, default=None,
                    help="requests in flight at once (default 8)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("ftguard"):
        from ftguard.pytest_session import GateSession

        config.stash[_SESSION] = GateSession.from_config(config)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    session = parent.config.stash.get(_SESSION, None)
    return session.collect_file(file_path, parent) if session else None


def pytest_collection_finish(session: pytest.Session) -> None:
    gate = session.config.stash.get(_SESSION, None)
    if gate:
        gate.collection_finished(session)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    gate = config.stash.get(_SESSION, None)
    if gate:
        gate.terminal_summary(terminalreporter)
