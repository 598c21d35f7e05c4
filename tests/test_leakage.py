"""ftguard check-leakage: exact and 13-gram overlap between training data and eval items."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import REPO, write_jsonl
from ftguard.errors import DataError
from ftguard.leakage import (
    NGRAM,
    check_item,
    check_leakage,
    load_training,
    normalize,
    render_leakage,
)

CLAUSE = ("Either party may terminate this Agreement upon thirty (30) days' written notice if the "
          "other party materially breaches any provision hereof and fails to cure such breach.")
# 29 tokens; its tokens 3..15 (13 of them) are "terminate ... notice if"
SUITE = """\
name: tiny
version: 1
role: target
tasks:
  - name: clauses
    kind: classify
    data: data/clauses.jsonl
    prompt: "Classify the contract clause into one of: termination, assignment, governing law.\\n\\n{{ text }}"
    target: "{{ label }}"
    labels: [termination, assignment, governing law]
    few_shot: {k: 1, data: data/shots.jsonl}
  - name: qa
    kind: choice
    data: data/qa.jsonl
    prompt: "{{ question }}"
    choices_field: choices
    target_index: "{{ answer }}"
"""
CLAUSES = [
    {"id": "c1", "text": CLAUSE, "label": "termination"},
    {"id": "c2", "text": "Neither party may assign this Agreement without the prior written consent "
                         "of the other party, which shall not be unreasonably withheld.",
     "label": "assignment"},
]
SHOTS = [{"id": "s1", "text": "This Agreement is governed by the laws of the State of New York, "
                              "without regard to its conflict of laws principles.",
          "label": "governing law"}]
QA = [{"id": "q1", "question": "Who holds the attorney-client privilege?",
       "choices": ["The client", "The attorney", "The judge", "Opposing counsel"], "answer": 0}]


@pytest.fixture
def suite(make_suite) -> Path:
    return make_suite(SUITE, {"data/clauses.jsonl": CLAUSES, "data/shots.jsonl": SHOTS,
                              "data/qa.jsonl": QA}, name="tiny")


def _train(tmp_path: Path, *rows: dict) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", [*rows])


def _words(text: str, start: int, stop: int) -> str:
    return " ".join(normalize(text)[start:stop])


def _filler(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def test_normalize_folds_case_punctuation_and_unicode() -> None:
    assert normalize("  The PARTY's  (30)\tdays’ notice—ﬁnal! ") == (
        "the", "party", "s", "30", "days", "notice", "final")
    assert normalize("") == ()


def test_training_copy_of_a_clause_is_exact(suite: Path, tmp_path: Path) -> None:
    train = _train(tmp_path, {"instruction": "Something else entirely.", "input": "", "output": "x"},
                   {"instruction": "Classify the contract clause.", "input": CLAUSE,
                    "output": "termination"})
    report = check_leakage([train], [suite])
    clauses = report.tasks[0]
    assert (clauses.items, clauses.exact, clauses.ngram) == (2, 1, 1)
    leak = clauses.leaks[0]
    assert (leak.id, leak.line, leak.exact, leak.ngram) == ("c1", 1, True, True)
    assert [(m.file, m.line) for m in leak.matches] == [(str(train), 2)]
    assert leak.matches[0].shared == " ".join(normalize(CLAUSE))
    assert not report.clean


def test_punctuation_and_case_differences_are_still_caught(suite: Path, tmp_path: Path) -> None:
    mangled = CLAUSE.upper().replace("(30)", "30").replace(",", " ,").replace("'", "")
    train = _train(tmp_path, {"prompt": "Rewrite: " + mangled.replace(" ", "  "),
                              "completion": "ok"})
    leak = check_leakage([train], [suite]).tasks[0].leaks[0]
    assert leak.id == "c1" and leak.exact


def test_a_shared_13_token_run_is_a_13gram_overlap(suite: Path, tmp_path: Path) -> None:
    run = _words(CLAUSE, 3, 3 + NGRAM)
    train = _train(tmp_path, {"messages": [
        {"role": "user", "content": f"Unrelated words first. {run.upper()}! then other words."},
        {"role": "assistant", "content": "Fine."}]})
    clauses = check_leakage([train], [suite]).tasks[0]
    assert (clauses.exact, clauses.ngram) == (0, 1)
    match = clauses.leaks[0].matches[0]
    assert (match.exact, match.ngram, match.shared) == (False, True, run)


def test_twelve_shared_tokens_are_clean(suite: Path, tmp_path: Path) -> None:
    rows = [{"instruction": _words(CLAUSE, start, start + NGRAM - 1), "input": "", "output": "y"}
            for start in range(0, len(normalize(CLAUSE)) - NGRAM + 2, 3)]
    report = check_leakage([_train(tmp_path, *rows)], [suite])
    assert report.clean
    assert [t.ngram + t.exact for t in report.tasks] == [0, 0]


def test_longest_shared_run_is_reported(tmp_path: Path) -> None:
    item = _filler(40)
    index = load_training([_train(tmp_path, {"text": "zz " + _filler(20) + " zz"})])
    (match,) = check_item([item], index)
    assert match.ngram and not match.exact
    assert match.shared == _filler(20)


def test_exact_needs_eight_tokens_or_a_whole_field(tmp_path: Path) -> None:
    train = _train(tmp_path,
                   {"instruction": "Who holds the attorney-client privilege?", "output": "client"},
                   {"instruction": "Q: w0 w1 w2 w3 w4 w5 w6 w7 A: yes"},
                   {"instruction": "Q: v0 v1 v2 v3 v4 v5 v6 A: yes"})
    index = load_training([train])
    assert [m.line for m in check_item(["Who holds the attorney client privilege"], index)] == [1]
    assert [m.line for m in check_item([_filler(8), "choice"], index)] == [2]
    assert check_item(["v0 v1 v2 v3 v4 v5 v6"], index) == ()  # 7 tokens inside a longer field
    assert check_item(["the attorney client privilege"], index) == ()  # part of a short field


def test_item_text_is_its_fields_not_the_prompt_or_few_shots(suite: Path, tmp_path: Path) -> None:
    instruction = ("Classify the contract clause into one of: termination, assignment, governing "
                   "law.")
    train = _train(tmp_path, {"instruction": instruction, "input": SHOTS[0]["text"],
                              "output": "governing law"})
    assert check_leakage([train], [suite]).clean


def test_choices_are_part_of_the_item(suite: Path, tmp_path: Path) -> None:
    text = ("who holds the attorney client privilege the client the attorney the judge "
            "opposing counsel")
    report = check_leakage([_train(tmp_path, {"prompt": text, "completion": "A"})], [suite])
    qa = report.tasks[1]
    assert (qa.task, qa.ngram, qa.leaks[0].id) == ("qa", 1, "q1")


def test_several_training_files_name_file_and_line(suite: Path, tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "nothing", "completion": "here"}])
    second = write_jsonl(tmp_path / "b.jsonl", [{"prompt": "x", "completion": "y"},
                                                {"prompt": CLAUSES[1]["text"], "completion": "z"}])
    report = check_leakage([first, second], [suite])
    assert report.training == {str(first): 1, str(second): 2}
    (leak,) = report.tasks[0].leaks
    assert (leak.id, leak.matches[0].file, leak.matches[0].line) == ("c2", str(second), 2)


def test_bad_training_json_names_file_and_line(suite: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n\n{"prompt": oops}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:3: is not valid JSON"):
        load_training([bad])


def test_cli_exit_codes(run_cli, suite: Path, tmp_path: Path) -> None:
    clean = write_jsonl(tmp_path / "clean.jsonl", [{"instruction": "Say hi.", "output": "hi"}])
    code, out, err = run_cli("check-leakage", "--train", clean, suite)
    assert code == 0, err
    assert "clean" in out and "clauses" in out

    leaky = write_jsonl(tmp_path / "leaky.jsonl", [{"instruction": "hi", "output": "hi"},
                                                   {"instruction": CLAUSE, "output": "t"}])
    code, out, err = run_cli("check-leakage", "--train", clean, "--train", leaky, suite)
    assert code == 1, err
    assert "c1" in out and f"{leaky}:2" in out and "exact" in out

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n", encoding="utf-8")
    code, out, err = run_cli("check-leakage", "--train", bad, suite)
    assert code == 2 and f"{bad}:1" in err and "Traceback" not in err
    code, _, err = run_cli("check-leakage", "--train", tmp_path / "missing.jsonl", suite)
    assert code == 2 and "missing.jsonl" in err and "cannot be read" in err
    code, _, err = run_cli("check-leakage", "--train", clean, tmp_path / "nowhere")
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli("check-leakage", suite)  # --train is required
    assert code == 2 and "--train" in err


def test_cli_json_and_capped_list(run_cli, make_suite, tmp_path: Path) -> None:
    rows = [{"id": f"c{i}", "text": f"{CLAUSE} Item number {i}.", "label": "termination"}
            for i in range(14)]
    root = make_suite(SUITE, {"data/clauses.jsonl": rows, "data/shots.jsonl": SHOTS,
                              "data/qa.jsonl": QA}, name="many")
    train = _train(tmp_path, {"instruction": CLAUSE, "output": "termination"})
    code, out, _ = run_cli("check-leakage", "--train", train, "--show", "5", root)
    assert code == 1
    assert "c4 (line 5)" in out and "c5 (line 6)" not in out and "and 9 more" in out
    code, out, _ = run_cli("check-leakage", "--train", train, "--format", "json", root)
    data = json.loads(out)
    assert code == 1 and data["clean"] is False and data["ngram"] == NGRAM
    clauses = data["tasks"][0]
    assert (clauses["items"], clauses["exact"], clauses["ngram"], clauses["leaked"]) == (
        14, 0, 14, 14)
    assert clauses["leaks"][0]["matches"][0] == {
        "file": str(train), "line": 1, "exact": False, "ngram": True,
        "shared": " ".join(normalize(CLAUSE))}


def test_shipped_training_data_is_clean(run_cli) -> None:
    train = [REPO / "suites/legal/train.jsonl", REPO / "suites/general/replay.jsonl"]
    suites = [REPO / "suites/legal", REPO / "suites/general"]
    started = time.perf_counter()
    report = check_leakage(train, suites)
    assert time.perf_counter() - started < 5
    assert report.clean, render_leakage(report, show=50)
    assert sum(report.training.values()) > 1000 and sum(t.items for t in report.tasks) > 1000
    code, out, err = run_cli("check-leakage", "--train", train[0], "--train", train[1], *suites)
    assert code == 0, out + err
