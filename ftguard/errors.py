"""Exceptions raised by ftguard.

Every error a user can cause is an :class:`FtguardError`; the CLI turns it into a
one-paragraph message and exit code 2 (``--debug`` shows the traceback). Each message names
the file, line, key or flag at fault and says how to fix it.

::

    FtguardError                 exit 2, carries ``hint`` (how to fix it) and ``option``
    ├── UsageError               a bad flag or flag combination
    ├── SuiteError               a suite that cannot be loaded; ``problems`` lists them all
    ├── DataError                a data file (JSONL) that cannot be read or is inconsistent
    ├── ModelError               a model / adapter that cannot be resolved or loaded
    │   └── OfflineError         a hub id asked for while the hub cannot be reached
    └── RecordError              a RunRecord that cannot be read or written

    TaskSkipped (not an FtguardError): a task that cannot run here; recorded as skipped
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

EXIT_OK, EXIT_GATE_FAILED, EXIT_ERROR = 0, 1, 2
"""The exit codes of every shell: pass, gate failed, usage / input / environment error."""
EXIT_SIGINT, EXIT_SIGTERM = 130, 143
"""Interrupted by Ctrl-C (SIGINT) or SIGTERM, the shell convention 128 + signal number."""

_OPTION = re.compile(r"\{--([a-z0-9][a-z0-9-]*)\}")


def cli_flag(option: str) -> str:
    """How the ``ftguard`` command spells an option: ``model`` -> ``--model``."""
    return f"--{option}"


class FtguardError(Exception):
    """Base of every user-facing error; ``str()`` is the full one-paragraph message.

    Library code names an option it blames as ``{--NAME}`` in ``message`` / ``hint`` (and
    the main one in ``option``); each shell words it with its own spelling
    (:meth:`worded`): the CLI writes ``--model``, the pytest plugin ``--ftguard-model``.
    """

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None,
                 option: str | None = None) -> None:
        self.message = message
        self.hint = hint
        self.option = option
        """The option at fault (``model``, ``adapter``, ...), when one is."""
        super().__init__(self.worded())

    def worded(self, flag: Callable[[str], str] = cli_flag) -> str:
        """The message and hint with every ``{--NAME}`` spelled by ``flag(NAME)``."""
        text = self.message if not self.hint else f"{self.message} {self.hint}"
        return _OPTION.sub(lambda m: flag(m.group(1)), text)

    def __str__(self) -> str:
        return self.worded()


class UsageError(FtguardError):
    """A command-line flag or API argument is invalid."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a suite: where it is and what is wrong."""

    file: str
    """Path of the file at fault (suite.yaml or a data file)."""
    line: int | None
    """1-based line number, when known."""
    key: str | None
    """Dotted key path inside suite.yaml (``tasks[0].metrics``), when relevant."""
    message: str
    """What is wrong and how to fix it."""

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        key = f" [{self.key}]" if self.key else ""
        return f"{where}{key}: {self.message}"


class SuiteError(FtguardError):
    """One or more problems in a suite; all of them are reported at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        if len(problems) == 1:
            text = str(problems[0])
        else:
            text = f"{len(problems)} problems found:\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(text)


class DataError(FtguardError):
    """A data file cannot be read, or its content is inconsistent.

    ``problems`` lists every problem found when a whole file was checked (may be empty).
    """

    def __init__(self, message: str, *, hint: str | None = None,
                 problems: list[Problem] | None = None) -> None:
        self.problems = list(problems or [])
        super().__init__(message, hint=hint)

    @classmethod
    def from_problems(cls, problems: list[Problem], *, hint: str | None = None) -> DataError:
        """One error listing all ``problems`` (one per line when there are several)."""
        if len(problems) == 1:
            text = str(problems[0])
        else:
            text = f"{len(problems)} problems found:\n" + "\n".join(f"  - {p}" for p in problems)
        return cls(text, hint=hint, problems=problems)


class ModelError(FtguardError):
    """A model or adapter cannot be resolved or loaded."""


class OfflineError(ModelError):
    """A hub model was requested but the hub cannot be reached (offline mode or no network)."""


class RecordError(FtguardError):
    """A RunRecord cannot be read or written."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type name when empty), cut to 300 characters:
    what an ftguard error quotes of the library exception it wraps."""
    lines = str(exc).strip().splitlines()
    line = lines[0] if lines else type(exc).__name__
    return line if len(line) < 300 else line[:297] + "..."


class TaskSkipped(Exception):  # a signal, not an error: the run goes on
    """A task that cannot run on this machine (its dataset is not reachable, a package its
    lm-eval task needs is not installed). The engine records it as skipped with ``reason``;
    compare and gate report every rule that selects it as ``unchecked``, never as passed."""

    def __init__(self, reason: str, metrics: tuple[str, ...] = ()) -> None:
        self.reason = reason
        self.metrics = metrics
        """The metrics the task would have reported (first = headline), when known."""
        super().__init__(reason)
