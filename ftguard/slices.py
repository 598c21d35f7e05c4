"""Slices: the subsets of a task's items that a ``slice_field`` names.

A task's ``slice_field: topic`` puts each item in the slice ``topic=VALUE`` of its ``topic``
field; a field holding a list of strings (tags) puts it in one slice per entry, and several
fields (``slice_field: [topic, difficulty]``) slice the task several ways. An item without the
field is in none of its slices. Each slice is named ``FIELD=VALUE`` everywhere: the record
(``TaskResult.slices``, ``SampleResult.slices``), compare's rows (``slice``), the report and the
gate's selector ``suite/task[FIELD=VALUE]``.
"""

from __future__ import annotations

import re
from typing import Any

FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
"""What a slice field may be called (it is written inside gate selectors)."""
_BAD_VALUE = re.compile(r"[:\[\]\x00-\x1f]")


def slice_fields(slice_field: str | list[str] | None) -> list[str]:
    """The field names of a task's ``slice_field`` (none when unset)."""
    if slice_field is None:
        return []
    return [slice_field] if isinstance(slice_field, str) else list(slice_field)


def slice_name(field: str, value: str) -> str:
    """``FIELD=VALUE``: a slice's name on every surface."""
    return f"{field}={value}"


def split_name(name: str) -> tuple[str, str]:
    """``(FIELD, VALUE)`` of a slice name."""
    field, _, value = name.partition("=")
    return field, value


def item_slices(slice_field: str | list[str], fields: dict[str, Any]
                ) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    """An item's slices and the problems of its slice fields, ``(key, message)``: a value
    must be a string (or whole number), or a list of them; a string may not be empty or hold
    ``:``, ``[``, ``]`` or control characters (gate selectors could not name it)."""
    found: list[str] = []
    problems: list[tuple[str, str]] = []
    for field in slice_fields(slice_field):
        raw = fields.get(field)
        values = raw if isinstance(raw, list) else [] if raw is None else [raw]
        for value in values:
            if isinstance(value, bool) or not isinstance(value, str | int):
                why = (f"slice field '{field}' must be a string or a list of strings (tags), "
                       f"not {type(value).__name__} {str(value)[:40]!r}")
                problems.append((field, why))
                continue
            text = str(value)
            if not text.strip() or _BAD_VALUE.search(text):
                why = (f"slice value {text[:40]!r} of field '{field}' must be non-empty, "
                       "without ':', '[', ']' or control characters (gate selectors name it "
                       f"as [{field}=VALUE])")
                problems.append((field, why))
                continue
            name = slice_name(field, text)
            if name not in found:
                found.append(name)
    return tuple(found), problems


def slice_counts(slices_per_item: list[tuple[str, ...]] | list[list[str]]) -> dict[str, int]:
    """Items per slice, in first-seen order."""
    counts: dict[str, int] = {}
    for names in slices_per_item:
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    return counts


def unused_field(slice_field: str | list[str] | None, slices_per_item: list[tuple[str, ...]],
                 data: str | None) -> str | None:
    """Why ``slice_field`` names a field no item has (a misspelt field would slice nothing),
    or None."""
    seen = {split_name(name)[0] for names in slices_per_item for name in names}
    missing = [f for f in slice_fields(slice_field) if f not in seen]
    if not missing:
        return None
    return (f"slice field '{missing[0]}' is in none of the {len(slices_per_item)} items of "
            f"{data}: give the items a '{missing[0]}' field (a string, or a list of strings), "
            "or name a field they have.")
