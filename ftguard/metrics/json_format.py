"""Instruction following with a format check: is the answer a JSON object, with the fields asked for?

The reference is the expected object written as JSON text (in a suite:
``target: "{{ expected | tojson }}"``).

- ``json_valid``: the prediction, after stripping whitespace and an optional Markdown code
  fence, parses as a JSON object (``{...}``). Nothing else may surround it: an answer that
  wraps the object in prose does not follow the instruction "answer only with JSON".
- ``json_field_match``: the share of the expected keys whose value the prediction's object
  has exactly (type-sensitive, except that 34 and 34.0 are equal; booleans are not numbers).
  An invalid answer scores 0. With several references, the best one counts.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ftguard.metrics.base import mean_metric

_FENCE = re.compile(r"^```(?:json)?\s*\n?(.*?)\n?```$", re.DOTALL | re.IGNORECASE)


def parse_object(text: str) -> dict[str, Any] | None:
    """The JSON object ``text`` holds, or None when it holds anything else."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


@mean_metric("json_valid", higher_is_better=True, kind="generate", binary=True,
             description="the answer is a JSON object and nothing else (code fence allowed)")
def json_valid(prediction: str) -> float:
    return 1.0 if parse_object(prediction) is not None else 0.0


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return type(got) is type(want) and got == want
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        return float(got) == float(want)
    return type(got) is type(want) and got == want


@mean_metric("json_field_match", higher_is_better=True, kind="generate", binary=False,
             description="share of the expected JSON fields the answer has exactly")
def json_field_match(prediction: str, references: list[str]) -> float:
    got = parse_object(prediction)
    best = 0.0
    for reference in references:
        want = parse_object(reference)
        if want is None:
            raise ValueError(f"json_field_match: reference {reference[:80]!r} is not a JSON "
                             "object; write the target as {{ expected | tojson }}")
        if got is None or not want:
            continue
        best = max(best, sum(k in got and _same(got[k], v) for k, v in want.items()) / len(want))
    return best
