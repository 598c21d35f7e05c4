"""Reading instruction-following prompts (IFEval's format) with a problem per bad field.

One JSON object per line: ``{"id", "prompt", "instruction_id_list", "kwargs"}``, ``kwargs`` a
list with one dict per instruction. ``row_problems`` checks one row (usable by a suite
loader on its own rows); ``load_prompts`` reads and checks a whole file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftguard.errors import DataError, Problem
from ftguard.metrics.instructions.spec import INSTRUCTION_TYPES, clean_kwargs, kwargs_problems
from ftguard.suite.jsonl import read_jsonl


@dataclass(frozen=True)
class InstructionPrompt:
    """One prompt and the instructions its response must follow."""

    id: str
    prompt: str
    instruction_id_list: list[str]
    kwargs: list[dict[str, Any]]
    """One dict per instruction, ``None`` values dropped."""


def row_problems(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, message)`` for every problem of one row; empty when the row is valid."""
    problems: list[tuple[str, str]] = []
    for key in ("id", "prompt"):
        if not isinstance(fields.get(key), str) or not fields[key].strip():
            problems.append((key, "must be a non-blank string"))
    return problems + instruction_problems(fields)


def instruction_problems(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, message)`` for every problem of a row's ``instruction_id_list`` and ``kwargs``
    (a suite's items have their own prompt fields)."""
    ids, kwargs = fields.get("instruction_id_list"), fields.get("kwargs")
    problems: list[tuple[str, str]] = []
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        problems.append(("instruction_id_list", "must be a non-empty list of instruction ids"))
        return problems
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        problems.append(("kwargs", f"must be a list of {len(ids)} dicts, one per instruction"))
        return problems
    if len(set(ids)) != len(ids):
        problems.append(("instruction_id_list", "names an instruction twice"))
    for index, (instruction_id, args) in enumerate(zip(ids, kwargs)):
        if args is not None and not isinstance(args, dict):
            problems.append((f"kwargs[{index}]", "must be a JSON object"))
            continue
        # an id that names no checkable type is the id's problem, not its kwargs'
        key = (f"kwargs[{index}]" if instruction_id in INSTRUCTION_TYPES
               else f"instruction_id_list[{index}]")
        problems.extend((key, message) for message in kwargs_problems(instruction_id, args))
    return problems


def load_prompts(path: Path) -> list[InstructionPrompt]:
    """Every prompt of ``path``; DataError listing each bad line and key."""
    rows, problems = read_jsonl(path)
    seen: dict[str, int] = {}
    prompts = []
    for row in rows:
        found = [Problem(str(path), row.line, key, message)
                 for key, message in row_problems(row.fields)]
        fields = row.fields
        if not found and fields["id"] in seen:
            found.append(Problem(str(path), row.line, "id", f"duplicates the id of line "
                                                            f"{seen[fields['id']]}"))
        problems.extend(found)
        if not found:
            seen[fields["id"]] = row.line
            prompts.append(InstructionPrompt(
                id=fields["id"], prompt=fields["prompt"],
                instruction_id_list=list(fields["instruction_id_list"]),
                kwargs=[clean_kwargs(args) for args in fields["kwargs"]]))
    if problems:
        raise DataError.from_problems(problems, hint="See ftguard/metrics/instructions/spec.py "
                                                     "for each type's kwargs.")
    return prompts

