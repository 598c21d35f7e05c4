"""Suite loading: prompts, few-shot sampling, chat turns, targets and the content hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import MC_ROWS, REPO, SMOKE_SUITE
from ftguard.errors import SuiteError
from ftguard.suite import load_suite

FEW_SHOT = SMOKE_SUITE.replace(
    "    target_index: \"{{ answer }}\"\n",
    "    target_index: \"{{ answer }}\"\n    few_shot: {k: 2, seed: 7, separator: \"\\n---\\n\"}\n", 1)


def test_prompt_choices_and_gold_are_rendered(make_suite) -> None:
    suite = load_suite(make_suite())
    mc = suite.tasks[0].instances[0]
    assert mc.context == "Question: What is the capital of France?\nAnswer:"
    assert mc.choices == ("Paris", "Berlin", "Madrid", "Rome") and mc.gold == 0
    qa = suite.tasks[1].instances[1]
    assert qa.references == ("blue", "light blue")
    cls = suite.tasks[2].instances[1]
    assert cls.choices == ("positive", "negative") and cls.gold == 1


def test_few_shot_is_seeded_fixed_k_and_never_the_item_itself(make_suite) -> None:
    first = load_suite(make_suite(FEW_SHOT, name="a")).tasks[0].instances
    again = load_suite(make_suite(FEW_SHOT, name="b")).tasks[0].instances
    assert [i.context for i in first] == [i.context for i in again]
    for inst, row in zip(first, MC_ROWS):
        blocks = inst.context.split("\n---\n")
        assert len(blocks) == 3  # k=2 examples + the question
        assert blocks[-1] == f"Question: {row['question']}\nAnswer:"
        assert all(row["question"] not in b for b in blocks[:-1])
        for block in blocks[:-1]:  # each example ends with its correct answer after the delimiter
            shot = next(r for r in MC_ROWS if r["question"] in block)
            assert block.endswith("Answer: " + shot["choices"][shot["answer"]])
    other_seed = load_suite(make_suite(FEW_SHOT.replace("seed: 7", "seed: 8"), name="c"))
    assert [i.context for i in other_seed.tasks[0].instances] != [i.context for i in first]


def test_few_shot_from_a_separate_file_and_chat_turns(make_suite) -> None:
    yaml = SMOKE_SUITE.replace(
        "    target_field: answers\n",
        "    target_field: answers\n    chat_template: true\n"
        "    few_shot: {k: 1, data: data/shots.jsonl}\n")
    shots = [{"id": "s1", "question": "What is two plus two?", "answers": ["four"]}]
    inst = load_suite(make_suite(yaml, files={"data/shots.jsonl": shots})).tasks[1].instances[0]
    assert inst.messages == (
        {"role": "user", "content": "Question: What is two plus two?\nAnswer:"},
        {"role": "assistant", "content": "four"},
        {"role": "user", "content": "Question: What is the capital of France?\nAnswer:"})


def test_hash_changes_with_data_and_prompt(make_suite) -> None:
    base = load_suite(make_suite(name="a")).hash
    assert load_suite(make_suite(name="b")).hash == base
    rows = [dict(r) for r in MC_ROWS]
    rows[0]["question"] = "What is the capital of Spain?"
    assert load_suite(make_suite(files={"data/mc.jsonl": rows}, name="c")).hash != base
    assert load_suite(make_suite(SMOKE_SUITE.replace("Review:", "Text:"), name="d")).hash != base


def test_sandbox_blocks_python_escapes(make_suite) -> None:
    yaml = SMOKE_SUITE.replace('prompt: "{{ text }}"',
                               'prompt: "{{ text.__class__.__mro__[1].__subclasses__() }}"')
    with pytest.raises(SuiteError) as info:
        load_suite(make_suite(yaml))
    assert "sandbox" in str(info.value) or "unsafe" in str(info.value)


def test_items_without_id_get_line_numbers(make_suite) -> None:
    rows = [{"text": "one two three"}, {"text": "four five six"}]
    suite = load_suite(make_suite(files={"data/ppl.jsonl": rows}))
    assert [i.id for i in suite.tasks[3].instances] == ["line-1", "line-2"]


def _words(suite, task: str) -> int:
    return sum(len(i.context.split()) for t in suite.tasks if t.name == task for i in t.instances)


def _rows(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_shipped_suites_have_the_promised_sizes() -> None:
    legal, general = load_suite(REPO / "suites/legal"), load_suite(REPO / "suites/general")
    assert (legal.spec.role, general.spec.role) == ("target", "general")
    sizes = {t.name: len(t.instances) for t in legal.tasks + general.tasks}
    kinds = {t.name: t.spec.kind for t in legal.tasks + general.tasks}
    assert sizes["clause_type"] >= 150 and len(legal.tasks[0].spec.labels or []) >= 6
    assert sizes["legal_qa"] >= 100 and sizes["plain_language"] >= 60
    assert sizes["doctrine_mc"] >= 100 and _words(legal, "legal_corpus") >= 15_000
    general_items = sum(len(t.instances) for t in general.tasks if t.spec.kind != "perplexity")
    assert general_items >= 700 and len(general.tasks) >= 6
    assert _words(general, "english_corpus") >= 15_000
    assert kinds["world_knowledge"] == kinds["commonsense"] == "choice"
    assert kinds["arithmetic"] == kinds["reading"] == kinds["json_format"] == "generate"
    train, replay = _rows(REPO / "suites/legal/train.jsonl"), _rows(REPO / "suites/general/replay.jsonl")
    assert len(train) >= 500 and len(replay) >= 500
    assert all(set(r) == {"instruction", "input", "output"} and r["output"] for r in train + replay)


def test_committed_baseline_matches_the_suites_and_is_plausible() -> None:
    from ftguard.record import read_run

    record = read_run(REPO / "baselines/smollm2-135m-instruct.json")
    assert record.model.spec == "smollm2-135m-instruct" and record.config.limit is None
    current = {s.name: s.hash for s in (load_suite(REPO / "suites/legal"),
                                        load_suite(REPO / "suites/general"))}
    assert {s.name: s.hash for s in record.suites} == current, (
        "suites changed: re-run `ftguard eval suites/legal suites/general "
        "--out baselines/smollm2-135m-instruct.json`")
    value = {(t.name, m): r.value for s in record.suites for t in s.tasks
             for m, r in t.metrics.items()}
    # a 135M instruct model: clearly above chance on easy general items ...
    assert value[("world_knowledge", "acc")] > 0.45 and value[("commonsense", "acc")] > 0.45
    assert value[("clause_type", "accuracy")] > 0.25  # 8 labels: chance is 0.125
    # ... and well below perfect on the legal ones
    assert all(value[(t, m)] < 0.8 for t, m in [("clause_type", "accuracy"),
                                                ("doctrine_mc", "acc"), ("legal_qa", "f1")])
