"""Reading one JSON file that a user handed us, with every way it can be wrong named.

Not a regular file (a folder or a FIFO, which would block the read), unreadable, not UTF-8
(with the line of the first bad byte), not JSON (with line and column), nested deeper than
the parser follows, or, with ``finite=True``, holding NaN or Infinity: each raises the
caller's error class with the file (and line) named.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftguard.errors import FtguardError


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(name)


def read_json(path: Path, error: type[FtguardError], *, what: str, hint: str | None = None,
              finite: bool = False, flag: str | None = None) -> Any:
    """The parsed content of ``path``; ``error`` (an FtguardError class) naming ``path`` (after
    the ``flag`` it came from) and ``what`` it should be when it cannot be read."""
    path = Path(path)
    name = f"{flag} {path}" if flag else str(path)
    if not path.exists():
        raise error(f"{name}: no such {what}.", hint=hint)
    if not path.is_file():
        raise error(f"{name}: is not a regular file (a folder, FIFO or device); give a "
                    f"{what}.", hint=hint)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{name}: cannot be read ({exc.strerror}).", hint=hint) from None
    return parse_json(data, name, error, what=what, hint=hint, finite=finite)


def parse_json(data: bytes | str, where: str, error: type[FtguardError], *, what: str,
               hint: str | None = None, finite: bool = False, line: int | None = None) -> Any:
    """``data`` parsed; ``where`` names its file (``line``: the line it came from)."""
    at = f"{where}:{line}" if line else where
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = line or data[:exc.start].count(b"\n") + 1
            raise error(f"{where}:{bad}: is not UTF-8 text ({exc.reason}); a {what} is "
                        "UTF-8 JSON.", hint=hint) from None
    try:
        return json.loads(data, parse_constant=_refuse_constant if finite else None)
    except _NonFinite as exc:
        raise error(f"{at}: holds {exc}, which is not a number a {what} may contain (JSON has "
                    "no NaN or Infinity).", hint=hint) from None
    except json.JSONDecodeError as exc:
        spot = f"{where}:{line or exc.lineno}"
        raise error(f"{spot}: not valid JSON ({exc.msg} at column {exc.colno}); the {what} is "
                    "damaged or truncated.", hint=hint) from None
    except RecursionError:
        raise error(f"{at}: is nested deeper than a JSON reader can follow; not a {what}.",
                    hint=hint) from None
