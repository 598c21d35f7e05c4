"""Reading records: RunRecords and Comparisons, refused with a RecordError that names the
file, its line where one can be told, the suite/task and item, and the problem."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ftguard.errors import RecordError
from ftguard.record.check import MAX_DEPTH, RERUN, check_plain, check_run, short
from ftguard.record.comparison import Comparison
from ftguard.record.run import SCHEMA_VERSION, RunRecord


def read_run(path: Path) -> RunRecord:
    """Read a RunRecord; raise RecordError naming the file and the problem."""
    text = _read_text(path, "run record", "`ftguard eval SUITE --out FILE`")
    data, odd = _parse_json(text, path)
    return _run_from(data, path, odd, text)


def read_record(path: Path) -> RunRecord | Comparison:
    """Read a RunRecord or a Comparison, told apart by their keys (the file is read once)."""
    text = _read_text(path, "file", "`ftguard eval --out` or `ftguard compare --out`")
    data, odd = _parse_json(text, path)
    if isinstance(data, dict) and {"rows", "passed", "base", "tuned"} <= data.keys():
        return _comparison_from(data, path)
    if isinstance(data, dict) and {"model", "suites"} <= data.keys():
        return _run_from(data, path, odd, text)
    raise RecordError(f"{path}: neither an ftguard Comparison (keys rows, passed, base, tuned) "
                      "nor a RunRecord (keys model, suites).",
                      hint="Create one with `ftguard compare --out` or `ftguard eval --out`.")


def load_json(path: Path, what: str, how: str) -> Any:
    """The JSON value in ``path`` (NaN and infinities read as floats); RecordError naming the
    file (and line) when it cannot be read."""
    return _parse_json(_read_text(path, what, how), path)[0]


def _read_text(path: Path, what: str, how: str) -> str:
    from ftguard.json_file import read_text

    return read_text(path, RecordError, what=what, hint=f"Create one with {how}, or write it "
                                                         "again if it is damaged.")


class _NonFinite(float):
    """A ``NaN``, ``Infinity`` or ``-Infinity`` literal (json.loads accepts them); ``n`` counts
    such literals before it in the file, to find its line."""

    n: int
    literal: str


def _parse_json(text: str, path: Path) -> tuple[Any, list[_NonFinite]]:
    odd: list[_NonFinite] = []

    def constant(literal: str) -> _NonFinite:
        value = _NonFinite(literal)
        value.n, value.literal = len(odd), literal
        odd.append(value)
        return value

    try:
        return json.loads(text, parse_constant=constant), odd
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}).",
                          hint="The file may be truncated; write it again.") from None
    except RecursionError:
        raise RecordError(f"{path}:{_line_deeper_than(text, MAX_DEPTH)}: not valid JSON (nested "
                          "deeper than Python's JSON reader allows).",
                          hint="ftguard never writes such a file; write it again.") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise RecordError(f"{path}: not valid JSON ({short(str(exc), 120)}).") from None


_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'


def _line_deeper_than(text: str, limit: int) -> int:
    """Line where brackets (outside strings) first nest deeper than ``limit``."""
    depth = 0
    for match in re.finditer(_STRING + r"|([\[{])|[\]}]", text):
        if match.group(1):
            depth += 1
            if depth > limit:
                return text.count("\n", 0, match.start()) + 1
        elif match.group() in ("]", "}"):
            depth -= 1
    return 1


def _line_of_literal(text: str, n: int) -> int:
    """Line of the ``n``-th NaN/Infinity literal (outside strings) of ``text``."""
    found = (m for m in re.finditer(_STRING + r"|(-?Infinity|NaN)", text) if m.group(1))
    for i, match in enumerate(found):
        if i == n:
            return text.count("\n", 0, match.start()) + 1
    return 1


def _refuse_literals(data: Any, odd: list[_NonFinite], text: str, path: Path) -> None:
    """A run record holds finite numbers, except a log-likelihood of -inf (a choice the model
    gives no probability); refuse the first other NaN/Infinity literal, naming its line,
    suite/task, item and key."""
    wanted = {id(v) for v in odd}
    first: tuple[_NonFinite, tuple[Any, ...]] | None = None
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        value, key = stack.pop()
        if isinstance(value, dict | list):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((v, (*key, k)) for k, v in items)
        elif id(value) in wanted and isinstance(value, _NonFinite):
            allowed = (len(key) == 8 and key[::2] == ("suites", "tasks", "samples",
                                                      "loglikelihoods")
                       and value.literal == "-Infinity")
            if not allowed and (first is None or value.n < first[0].n):
                first = (value, key)
    if first is None:
        return
    value, key = first
    where, rest = "", key
    if key[:1] == ("suites",) and len(key) >= 4 and key[2] == "tasks":
        suite, task = _get(data, key[:2]), _get(data, key[:4])
        where = f"{short(_get(suite, ('name',)))}/{short(_get(task, ('name',)))}: "
        rest = key[4:]
        if len(key) >= 6 and key[4] == "samples":
            where += f"item {short(repr(_get(data, (*key[:6], 'id'))))}: "
            rest = key[6:]
    dotted = ".".join(f"[{k}]" if isinstance(k, int) else short(str(k), 40) for k in rest)
    raise RecordError(f"{path}:{_line_of_literal(text, value.n)}: {where}non-finite value "
                      f"{value.literal} of {dotted.replace('.[', '[')}; records hold finite "
                      "numbers only.", hint=RERUN)


def _get(data: Any, key: tuple[Any, ...]) -> Any:
    for k in key:
        try:
            data = data[k]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _run_from(data: Any, path: Path, odd: list[_NonFinite] | None = None,
              text: str = "") -> RunRecord:
    if not isinstance(data, dict) or "schema_version" not in data:
        raise RecordError(f"{path}: not an ftguard run record (no 'schema_version').")
    if data["schema_version"] != SCHEMA_VERSION:
        raise RecordError(f"{path}: run record schema {short(data['schema_version'])} is not "
                          f"supported by this ftguard (schema {SCHEMA_VERSION}).",
                          hint="Re-run the evaluation with this version of ftguard.")
    if odd:
        _refuse_literals(data, odd, text, path)
    _require_scores(data, path)
    try:
        record = RunRecord.model_validate(data)
    except ValidationError as exc:
        raise validation_error(path, "run record", exc) from None
    check_run(record, path)
    return record


def _require_scores(data: dict[str, Any], path: Path) -> None:
    """Every sample carries ``scores`` (possibly empty): paired statistics need them."""
    for suite in _list(data.get("suites")):
        for task in _list(suite.get("tasks")) if isinstance(suite, dict) else []:
            for sample in _list(task.get("samples")) if isinstance(task, dict) else []:
                if isinstance(sample, dict) and "scores" not in sample:
                    raise RecordError(
                        f"{path}: {short(suite.get('name'))}/{short(task.get('name'))}: item "
                        f"{short(repr(sample.get('id')))} has no 'scores'; every sample must carry "
                        "its per-item scores for paired statistics.",
                        hint="Re-create the record with `ftguard eval --out`.")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _comparison_from(data: Any, path: Path) -> Comparison:
    try:
        comparison = Comparison.model_validate(data)
    except ValidationError as exc:
        raise validation_error(path, "comparison", exc) from None
    check_plain(path, "", {"settings": comparison.settings})
    return comparison


def validation_error(path: Path, what: str, exc: ValidationError) -> RecordError:
    """RecordError naming ``path`` and where in the file the first problem of ``exc`` is."""
    first = exc.errors()[0]
    where = ".".join(short(str(p), 40) for p in first["loc"])
    return RecordError(f"{path}: invalid {what} at '{where}': {first['msg']} "
                       f"({exc.error_count()} problem(s)).")


def read_comparison(path: Path) -> Comparison:
    """Read a Comparison; raise RecordError naming the file."""
    return _comparison_from(load_json(path, "comparison file", "`ftguard compare --out`"), path)
