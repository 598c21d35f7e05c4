"""json_valid and json_field_match on hand-made cases."""

from __future__ import annotations

import json

import pytest

from ftguard.metrics.score import score_generate

REF = json.dumps({"name": "Maria", "age": 34, "member": False})


@pytest.mark.parametrize(("prediction", "valid", "fields"), [
    ('{"name": "Maria", "age": 34, "member": false}', 1.0, 1.0),
    ('  {"age": 34.0, "name": "Maria", "member": false}\n', 1.0, 1.0),       # order, 34.0 == 34
    ('```json\n{"name": "Maria", "age": 34, "member": false}\n```', 1.0, 1.0),  # code fence
    ('{"name": "maria", "age": "34", "member": 0}', 1.0, 0.0),               # case, types, bool
    ('{"name": "Maria"}', 1.0, 1 / 3),                                       # missing keys
    ('Sure! {"name": "Maria", "age": 34, "member": false}', 0.0, 0.0),       # prose around it
    ('["Maria", 34]', 0.0, 0.0),                                             # not an object
    ('{"name": "Maria", "age": 34,', 0.0, 0.0),                              # truncated
    ("", 0.0, 0.0),
])
def test_json_metrics(prediction: str, valid: float, fields: float) -> None:
    scores, stats = score_generate(prediction, [REF], ["json_valid", "json_field_match"])
    assert scores == {"json_valid": valid, "json_field_match": pytest.approx(fields)}
    assert stats == {}


def test_reference_written_by_tojson_with_html_escapes_parses() -> None:
    from jinja2.sandbox import SandboxedEnvironment

    ref = SandboxedEnvironment().from_string("{{ e | tojson }}").render(e={"t": "<a & b>"})
    assert "\\u003c" in ref  # jinja escapes <, >, & but the text is still the same JSON
    assert score_generate('{"t": "<a & b>"}', [ref], ["json_field_match"])[0] == {
        "json_field_match": 1.0}


def test_a_reference_that_is_not_json_is_an_error() -> None:
    with pytest.raises(ValueError, match="tojson"):
        score_generate("{}", ["Maria"], ["json_field_match"])
