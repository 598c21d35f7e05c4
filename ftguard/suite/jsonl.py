"""Reading JSONL data files with line numbers for every error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ftguard.errors import Problem

MAX_DEPTH = 100
"""Deepest nesting of lists and objects in a row: deeper values would exhaust Python's
recursion limit in the code that renders, hashes or dumps them."""
MAX_PROBLEMS = 20
"""Problems reported one by one per file; the rest are counted (a file in the wrong format
would otherwise give one message per line)."""


@dataclass(frozen=True)
class Row:
    """One JSON object of a data file."""

    line: int
    """1-based line number in the file."""
    fields: dict[str, Any] = field(hash=False)
    """The object's fields, as available to prompt templates."""


def read_jsonl(path: Path, display: str | None = None) -> tuple[list[Row], list[Problem]]:
    """Read every non-blank line of ``path``; return the rows and the problems found.

    Reading goes on after a bad line so that every problem is reported at once. Each line is
    decoded on its own, so a line that is not UTF-8 is named and the others still read.
    """
    name = display or str(path)
    rows: list[Row] = []
    problems: list[Problem] = []
    if path.exists() and not path.is_file():  # a FIFO would block, a folder cannot be read
        return [], [Problem(name, None, None, "is not a regular file; give a JSONL file.")]
    try:
        handle = path.open("rb")
    except OSError as exc:
        return [], [Problem(name, None, None, f"cannot be read: {exc.strerror or exc}.")]
    bad = 0
    with handle:
        try:
            for number, raw in lines(handle):
                value = parse_line(raw, number == 1)
                if isinstance(value, dict):
                    rows.append(Row(number, value))
                elif value is not None:
                    bad += 1
                    if bad <= MAX_PROBLEMS:
                        problems.append(Problem(name, number, None, value))
        except OSError as exc:
            problems.append(Problem(name, None, None, f"cannot be read: {exc.strerror or exc}."))
    if bad > MAX_PROBLEMS:
        problems.append(Problem(name, None, None, f"{bad - MAX_PROBLEMS} more line(s) have "
                                                  "problems; fix the ones above first."))
    if not rows and not problems:
        problems.append(Problem(name, None, None, "is empty: a data file needs at least one item."))
    return rows, problems


def lines(handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes)`` of each line; lines end at \\n, \\r\\n or \\r, as in text mode."""
    number = 0
    for chunk in handle:
        for raw in (chunk.splitlines() if b"\r" in chunk else [chunk]) or [b""]:
            number += 1
            yield number, raw


def parse_line(raw: bytes, first: bool) -> dict[str, Any] | str | None:
    """The line's object; a problem (str, to follow ``file:line: ``) when it is not one;
    None for a blank line. ``first``: the file's first line (a byte order mark is dropped)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (f"is not UTF-8 text ({exc.reason}: byte {raw[exc.start]:#04x} at column "
                f"{exc.start + 1}); save the file as UTF-8.")
    if first:
        text = text.removeprefix("\ufeff")  # a byte order mark, as some editors write
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return (f"is not valid JSON ({exc.msg} at column {exc.colno}); each line must hold one "
                "JSON object.")
    except RecursionError:
        return ("is nested deeper than Python's JSON reader allows; each line must hold one "
                f"JSON object nested at most {MAX_DEPTH} levels deep.")
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        return f"is not valid JSON ({exc}); each line must hold one JSON object."
    if not isinstance(value, dict):
        return (f"holds a JSON {type(value).__name__}, not an object; each line must be an "
                'object like {"id": ..., ...}.')
    if text.count("[") + text.count("{") > MAX_DEPTH and nested_deeper_than(value, MAX_DEPTH):
        return f"is nested more than {MAX_DEPTH} levels deep; flatten the item's fields."
    return value


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and dicts in ``value`` nest more than ``limit`` levels (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict)
                                                  else item))
    return False
