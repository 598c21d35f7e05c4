"""Reading JSONL data files with line numbers for every error."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftguard.errors import Problem


@dataclass(frozen=True)
class Row:
    """One JSON object of a data file."""

    line: int
    """1-based line number in the file."""
    fields: dict[str, Any] = field(hash=False)
    """The object's fields, as available to prompt templates."""


def read_jsonl(path: Path, display: str | None = None) -> tuple[list[Row], list[Problem]]:
    """Read every non-blank line of ``path``; return the rows and the problems found.

    Reading goes on after a bad line so that every problem is reported at once.
    """
    name = display or str(path)
    rows: list[Row] = []
    problems: list[Problem] = []
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        return [], [Problem(name, None, None, f"cannot be read: {exc.strerror}.")]
    with handle:
        try:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    problems.append(Problem(name, number, None,
                                            f"is not valid JSON ({exc.msg} at column {exc.colno}); "
                                            "each line must hold one JSON object."))
                    continue
                if not isinstance(value, dict):
                    problems.append(Problem(name, number, None,
                                            f"holds a JSON {type(value).__name__}, not an object; "
                                            'each line must be an object like {"id": ..., ...}.'))
                    continue
                rows.append(Row(number, value))
        except UnicodeDecodeError as exc:
            problems.append(Problem(name, None, None, f"is not UTF-8 text ({exc.reason})."))
    if not rows and not problems:
        problems.append(Problem(name, None, None, "is empty: a data file needs at least one item."))
    return rows, problems
