"""How a task variant's results are named: ``TASK@VARIANT``. Kept apart (no imports) so
compare and the gate tell variants' rows from tasks' own without loading the suite code."""

from __future__ import annotations

VARIANT_SEP = "@"
"""Joins a task's name and a variant's (``clause_type@reversed``); never in a task name."""


def variant_task_name(task: str, variant: str) -> str:
    """The name a variant's results carry: ``TASK@VARIANT``."""
    return f"{task}{VARIANT_SEP}{variant}"


def is_variant_task(name: str) -> bool:
    """Whether ``name`` is a variant's (``TASK@VARIANT``) rather than a task's own."""
    return VARIANT_SEP in name
