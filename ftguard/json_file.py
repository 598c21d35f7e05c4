"""Reading one JSON file that a user handed us, with every way it can be wrong named.

Not a regular file (a folder or a FIFO, which would block the read), unreadable, not UTF-8
(with the line of the first bad byte), not JSON (with line and column), or nested deeper than
the parser follows: each raises the caller's error class with the file (and line) named.
RunRecords add their own checks on top (:mod:`ftguard.record`); JSONL files are read line by
line by :mod:`ftguard.suite.jsonl`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftguard.errors import FtguardError


def read_text(path: Path, error: type[FtguardError], *, what: str, hint: str | None = None,
              flag: str | None = None) -> str:
    """The UTF-8 text of ``path``; ``error`` (an FtguardError class) naming ``path`` (after
    the ``flag`` it came from) and ``what`` it should be when it cannot be read."""
    path = Path(path)
    name = f"{flag} {path}" if flag else str(path)
    try:
        if not path.exists():
            raise error(f"{name}: no such {what}.", hint=hint)
        if not path.is_file():
            raise error(f"{name}: is not a regular file (a folder, FIFO or device); give a "
                        f"{what}.", hint=hint)
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{name}: cannot be read ({exc.strerror or exc}).", hint=hint) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"{name}:{line}: is not UTF-8 text ({exc.reason}: byte "
                    f"{data[exc.start]:#04x}); a {what} is UTF-8.", hint=hint) from None


def read_json(path: Path, error: type[FtguardError], *, what: str, hint: str | None = None,
              flag: str | None = None) -> Any:
    """The parsed content of ``path``, read as :func:`read_text` reads it."""
    text = read_text(path, error, what=what, hint=hint, flag=flag)
    name = f"{flag} {path}" if flag else str(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{name}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno}); "
                    f"the {what} is damaged or truncated.", hint=hint) from None
    except RecursionError:
        raise error(f"{name}: is nested deeper than a JSON reader can follow; not a {what}.",
                    hint=hint) from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise error(f"{name}: not valid JSON ({str(exc)[:120]}).", hint=hint) from None
