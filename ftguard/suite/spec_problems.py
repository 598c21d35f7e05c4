"""suite.yaml's schema errors as located problems: file, line, key, and what would be valid."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ftguard.errors import Problem
from ftguard.suite.extract_spec import FILTER_OPTIONS
from ftguard.suite.schema import (
    TASK_KINDS,
    FewShotSpec,
    GenerationSpec,
    SuiteSpec,
    TaskSpec,
    VariantSpec,
)
from ftguard.suite.yaml_lines import KeyPath, format_key, line_of

_MODELS: dict[str, type[BaseModel]] = {"few_shot": FewShotSpec, "generation": GenerationSpec,
                                       "variants": VariantSpec}


def _model_at(loc: KeyPath) -> type[BaseModel]:
    if len(loc) >= 2 and loc[0] == "tasks":
        if len(loc) == 5 and loc[2] == "extract" and loc[4] in FILTER_OPTIONS:
            return FILTER_OPTIONS[str(loc[4])]  # a filter's options
        if len(loc) >= 3 and isinstance(loc[2], str) and loc[2] in _MODELS:
            return _MODELS[loc[2]]
        return TaskSpec
    return SuiteSpec


def problem_from(error: Any, lines: dict[KeyPath, int], yaml_path: Path) -> Problem:
    """One pydantic validation error of suite.yaml as a Problem at its line and key, with the
    valid keys (and the closest one) for an unknown key and the valid kinds for a bad kind."""
    loc: KeyPath = tuple(error["loc"])
    key = format_key(loc) or None
    line = line_of(lines, loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        valid = sorted(model.model_fields)
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return Problem(str(yaml_path), line, key,
                       f"unknown key '{loc[-1]}'.{hint} Valid keys here: {', '.join(valid)}.")
    if kind == "missing":
        return Problem(str(yaml_path), line, key, f"required key '{loc[-1]}' is missing.")
    if kind == "literal_error" and loc and loc[-1] == "kind":
        close = difflib.get_close_matches(str(error.get("input")), TASK_KINDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return Problem(str(yaml_path), line, key, f"unknown task kind {error.get('input')!r}."
                       f"{hint} Valid kinds: {', '.join(TASK_KINDS)}.")
    if kind == "string_type" and isinstance(error.get("input"), bool):
        word = "true" if error["input"] else "false"
        return Problem(str(yaml_path), line, key,
                       f"YAML read this value as the boolean {word} (yes/no/on/off/true/false "
                       "unquoted are booleans), but a string is needed here. Quote it, e.g. "
                       "'yes'.")
    message = str(error["msg"]).removeprefix("Value error, ")
    return Problem(str(yaml_path), line, key, message + ".")
