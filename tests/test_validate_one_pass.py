"""``suites validate`` reports every problem of every class in one pass, each located."""

from __future__ import annotations

import json
from pathlib import Path

from ftguard.suite import validate_paths

YAML = """\
name: broken
version: 1
role: target
tasks:
  - name: schema_bad
    kind: choice
    data: data/a.jsonl
    prompt: "{{ q }}"
    target_index: "{{ answer }}"
    choices_field: choices
    colour: blue
  - name: data_bad
    kind: generate
    data: data/bad_json.jsonl
    prompt: "{{ q }}"
    target_field: answers
  - name: ids_bad
    kind: generate
    data: data/dupes.jsonl
    prompt: "{{ q }}"
    target_field: answers
  - name: template_bad
    kind: generate
    data: data/a.jsonl
    prompt: "{{ q "
    target_field: answers
  - name: label_bad
    kind: classify
    data: data/labels.jsonl
    prompt: "{{ q }}"
    target: "{{ label }}"
    labels: [positive, negative]
  - name: shots_bad
    kind: generate
    data: data/a.jsonl
    prompt: "{{ q }}"
    target_field: answers
    few_shot: {k: 5}
gate:
  - "nosuchtask:headline:not-regressed"
"""


def _write(root: Path) -> Path:
    data = root / "data"
    data.mkdir(parents=True)
    rows = [{"id": f"a{i}", "q": f"q{i}", "answers": ["x"], "choices": ["x", "y"], "answer": 0}
            for i in range(3)]
    (data / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "bad_json.jsonl").write_text('{"id": "b1", "q": "q", "answers": ["x"]}\n{"id": \n')
    (data / "dupes.jsonl").write_text("".join(json.dumps({"id": "d", "q": "q", "answers": ["x"]})
                                              + "\n" for _ in range(2)))
    (data / "labels.jsonl").write_text(json.dumps({"id": "l1", "q": "q", "label": "maybe"}) + "\n"
                                       + json.dumps({"id": "l2", "q": "q", "label": "positive"}) + "\n")
    (root / "suite.yaml").write_text(YAML)
    return root


def test_every_problem_class_is_reported_at_once(tmp_path: Path) -> None:
    root = _write(tmp_path / "broken")
    suites, problems = validate_paths([root])
    assert suites == []
    text = [str(p) for p in problems]
    yaml, data = str(root / "suite.yaml"), root / "data"

    def one(needle: str, where: str) -> str:
        hits = [t for t in text if needle in t and t.startswith(where)]
        assert len(hits) == 1, (needle, where, text)
        return hits[0]

    one("colour", f"{yaml}:11")                          # schema: unknown key, its line
    one("", f"{data / 'bad_json.jsonl'}:2")              # data: the broken JSONL line
    one("duplicate sample id 'd'", f"{data / 'dupes.jsonl'}:1")   # ids
    one("tasks[3].prompt", f"{yaml}:25")                 # template syntax
    one("maybe", f"{data / 'labels.jsonl'}:1")           # a label outside the label set
    one("k=5 but the pool has 2 items", f"{yaml}:38")    # few-shot k larger than its pool
    one("nosuchtask", f"{yaml}:40")                      # a gate rule selecting nothing
    assert len(problems) == 7, text


def test_several_folders_report_all_of_them(tmp_path: Path) -> None:
    first, second = _write(tmp_path / "one"), _write(tmp_path / "two")
    missing = tmp_path / "nowhere"
    _, problems = validate_paths([first, missing, second])
    for folder in (first, second):
        assert len([p for p in problems if p.file.startswith(str(folder))]) == 7
    assert [p.file for p in problems if p.file.startswith(str(missing))] == [str(missing)]
    assert len(problems) == 2 * 7 + 1


def test_unquoted_yes_no_labels_are_explained(tmp_path: Path) -> None:
    root = _write(tmp_path / "b")
    yaml = (root / "suite.yaml").read_text().replace("[positive, negative]", "[yes, no]")
    (root / "suite.yaml").write_text(yaml)
    _, problems = validate_paths([root])
    bools = [str(p) for p in problems if "labels[" in str(p)]
    assert len(bools) == 2 and all("boolean" in b and "Quote it" in b for b in bools), bools
    assert "boolean true" in bools[0] and "boolean false" in bools[1]
