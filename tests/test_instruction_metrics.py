"""IFEval's four metrics as ftguard metrics: per-item scores and statistics, task values with
intervals, the path from an item's instructions to its scores, the per-type breakdown, and
clear errors for bad instruction data. The checkers themselves are compared with lm-eval's in
tests/test_instruction_checkers.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import write_jsonl
from ftguard.metrics import aggregate, get_metric, score_generate
from ftguard.metrics.instruction_following import INSTRUCTION_METRICS, followed
from ftguard.metrics.instructions import aggregate as ifeval_aggregate
from ftguard.metrics.instructions import follow
from ftguard.record import read_comparison, read_run
from ftguard.stats import paired_swap_test

SHIPPED = Path(__file__).resolve().parents[1] / "ftguard/suites/general"

# (response, instructions): strict / loose per instruction worked out by hand
#   A: [T, T] / [T, T]; B: the comma is on the first line, which loose may drop: [F, T] / [T, T];
#   C: no <<title>>: [F] / [F]
ITEMS: list[tuple[str, tuple[tuple[str, dict[str, Any]], ...]]] = [
    ("hello world", (("punctuation:no_comma", {}), ("change_case:english_lowercase", {}))),
    ("hi, there\nBye.", (("punctuation:no_comma", {}),
                         ("startend:end_checker", {"end_phrase": "Bye."}))),
    ("no title here", (("detectable_format:title", {}),)),
]


def scored() -> list[tuple[dict[str, float], dict[str, list[float]]]]:
    return [score_generate(text, [], list(INSTRUCTION_METRICS), followed(text, instructions))
            for text, instructions in ITEMS]


def test_per_item_scores_and_stats_by_hand() -> None:
    (a_scores, a_stats), (b_scores, b_stats), (c_scores, c_stats) = scored()
    assert [a_scores["prompt_level_strict_acc"], b_scores["prompt_level_strict_acc"],
            c_scores["prompt_level_strict_acc"]] == [1.0, 0.0, 0.0]
    assert [a_scores["prompt_level_loose_acc"], b_scores["prompt_level_loose_acc"],
            c_scores["prompt_level_loose_acc"]] == [1.0, 1.0, 0.0]
    assert [a_stats["inst_level_strict_acc"], b_stats["inst_level_strict_acc"],
            c_stats["inst_level_strict_acc"]] == [[2.0, 2.0], [1.0, 2.0], [0.0, 1.0]]
    assert b_stats["inst_level_loose_acc"] == [2.0, 2.0]
    assert b_scores["inst_level_strict_acc"] == 0.5  # the item's own share, for display


def test_task_values_by_hand_and_as_ifeval_aggregates_them() -> None:
    samples = scored()
    values = {}
    for name in INSTRUCTION_METRICS:
        if get_metric(name).aggregation == "mean":
            value = aggregate(name, [s[name] for s, _ in samples], None)
        else:
            value = aggregate(name, None, np.array([st[name] for _, st in samples]),
                              resamples=200)
        assert value.higher_is_better and value.n == 3
        assert value.ci_low <= value.value <= value.ci_high
        values[name] = value.value
    # prompt level: 1/3 strict, 2/3 loose; instruction level is a micro average over the five
    # instructions, 3/5 strict and 4/5 loose (the mean of per-item shares would be 0.5)
    assert values == pytest.approx({"prompt_level_strict_acc": 1 / 3,
                                    "prompt_level_loose_acc": 2 / 3,
                                    "inst_level_strict_acc": 0.6, "inst_level_loose_acc": 0.8})
    reference = ifeval_aggregate(
        ([i for i, _ in inst], *follow(text, [i for i, _ in inst], [k for _, k in inst]))
        for text, inst in ITEMS)
    assert values == pytest.approx({name: getattr(reference, name) for name in values})
    assert get_metric("prompt_level_strict_acc").binary
    assert aggregate("prompt_level_strict_acc", [1.0, 0.0, 0.0], None).method == "wilson"


def test_inst_level_is_a_corpus_metric_the_swap_test_compares() -> None:
    fn = get_metric("inst_level_strict_acc").corpus_fn
    assert fn is not None
    assert fn(np.array([[3.0, 5.0], [0.0, 2.0]])).tolist() == [0.6, 0.0]  # vectorised
    base = np.array([[0.0, 2.0], [1.0, 1.0], [0.0, 3.0], [1.0, 2.0]])
    tuned = np.array([[2.0, 2.0], [1.0, 1.0], [3.0, 3.0], [2.0, 2.0]])
    result = paired_swap_test(base, tuned, fn, resamples=2000, seed=1)
    assert result.base == pytest.approx(2 / 8) and result.tuned == pytest.approx(1.0)
    assert result.delta == pytest.approx(0.75)


def test_instruction_metrics_need_the_items_instructions() -> None:
    with pytest.raises(ValueError, match="need the item's instructions"):
        score_generate("text", [], ["prompt_level_strict_acc"])
    with pytest.raises(ValueError, match="at least one reference"):
        score_generate("text", [], ["prompt_level_strict_acc", "exact_match"],
                       followed("text", (("punctuation:no_comma", {}),)))


INSTRUCTED_TASK = """\
  - name: follow
    kind: generate
    data: data/follow.jsonl
    prompt: "{{ request }}"
    generation: {max_new_tokens: 8, stop: []}
    metrics: [prompt_level_strict_acc, prompt_level_loose_acc, inst_level_strict_acc,
              inst_level_loose_acc]
"""

LOWER = ("change_case:english_lowercase", {})
NO_COMMA = ("punctuation:no_comma", {})
END = ("startend:end_checker", {"end_phrase": "now"})
ROWS = [(f"r{i}", f"Write {word}", inst) for i, (word, inst) in enumerate([
    ("quietly", [LOWER, NO_COMMA]), ("LOUDLY", [LOWER]), ("now", [END, NO_COMMA]),
    ("Later", [END]), ("slowly", [NO_COMMA]), ("fast", [LOWER, END]), ("now", [LOWER]),
    ("Soon", [NO_COMMA, LOWER])])]


def instructed_suite(root: Path, rows: list[dict[str, Any]]) -> Path:
    root.mkdir(parents=True)
    (root / "suite.yaml").write_text(f"name: inst\nversion: 1\nrole: general\ntasks:\n"
                                     f"{INSTRUCTED_TASK}", encoding="utf-8")
    write_jsonl(root / "data/follow.jsonl", rows)
    return root


def test_a_run_scores_items_by_their_instructions(tmp_path: Path, run_cli: Any) -> None:
    rows = [{"id": i, "request": text, "instruction_id_list": [k for k, _ in inst],
             "kwargs": [a for _, a in inst]} for i, text, inst in ROWS]
    suite = instructed_suite(tmp_path / "inst", rows)
    out = tmp_path / "run.json"
    code, _, err = run_cli("eval", suite, "--model", "fake", "--no-progress", "-o", out)
    assert code == 0, err
    task = read_run(out).suites[0].tasks[0]
    predictions = {s.id: s.prediction for s in task.samples}
    assert set(predictions.values()) - {""}, "the fake model echoed nothing"
    # the recorded values are IFEval's aggregates of the checkers on the recorded predictions
    reference = ifeval_aggregate(
        ([k for k, _ in inst], *follow(predictions[i], [k for k, _ in inst],
                                       [a for _, a in inst])) for i, _, inst in ROWS)
    for name in INSTRUCTION_METRICS:
        assert task.metrics[name].value == pytest.approx(getattr(reference, name)), name
        assert task.metrics[name].n == len(ROWS)
    assert task.instruction_types is not None
    assert {k: (v.n, v.strict, v.loose) for k, v in task.instruction_types.items()} == {
        k: (t.n, t.strict / t.n, t.loose / t.n) for k, t in reference.by_type.items()}
    first = task.samples[0]
    assert first.instructions is not None and [r.id for r in first.instructions] == [
        "change_case:english_lowercase", "punctuation:no_comma"]
    assert first.target == []  # an instruction-following item has no reference answer


def test_shipped_task_eval_and_compare_on_the_fake_model(tmp_path: Path, run_cli: Any) -> None:
    runs = {}
    for seed in ("0", "1"):
        runs[seed] = tmp_path / f"fake{seed}.json"
        code, _, err = run_cli("eval", SHIPPED, "--model", f"fake:{seed}", "--tasks",
                               "instructions", "--limit", "5", "--no-progress", "-o", runs[seed])
        assert code == 0, err
    task = read_run(runs["0"]).suites[0].tasks[0]
    assert task.name == "instructions" and list(task.metrics) == list(INSTRUCTION_METRICS)
    assert task.settings["chat_template"] is True
    assert task.instruction_types is not None
    assert sum(v.n for v in task.instruction_types.values()) == sum(
        len(s.instructions or []) for s in task.samples)
    comparison = tmp_path / "cmp.json"
    code, out, err = run_cli("compare", runs["0"], runs["1"], "-o", comparison)
    assert code in (0, 1), err
    for name in INSTRUCTION_METRICS:
        assert name in out
    rows = {r.metric: r for r in read_comparison(comparison).rows}
    assert set(rows) == set(INSTRUCTION_METRICS)
    assert rows["inst_level_strict_acc"].method.startswith("swap")
    assert rows["prompt_level_strict_acc"].method.startswith("mcnemar")
    assert rows["prompt_level_strict_acc"].headline
    changes = read_comparison(comparison).instruction_types
    assert [c.type for c in changes] == list(task.instruction_types)
    html = tmp_path / "cmp.html"
    code, _, err = run_cli("report", comparison, "-o", html)
    assert code == 0, err
    assert "Instruction following by type" in html.read_text(encoding="utf-8")
    run_html = tmp_path / "run.html"
    code, _, err = run_cli("report", runs["0"], "-o", run_html)
    assert code == 0, err
    page = run_html.read_text(encoding="utf-8")
    assert "Instruction following by type" in page and "combination:repeat_prompt" in page
    code, out, err = run_cli("suites", "show", f"{SHIPPED}/instructions", "--render", "1",
                             "--model", "fake")
    assert code == 0, err
    assert ('instruction: combination:repeat_prompt {"prompt_to_repeat": "Give tips for a '
            'first job interview at a bookshop."}') in out


def test_bad_instruction_data_names_file_line_and_key(tmp_path: Path, run_cli: Any) -> None:
    good = {"id": "g", "request": "Write", "instruction_id_list": ["punctuation:no_comma"],
            "kwargs": [{}]}
    rows = [good,
            {**good, "id": "u", "instruction_id_list": ["punctuation:no_semicolon"]},
            {**good, "id": "k", "instruction_id_list": ["length_constraints:number_words"],
             "kwargs": [{"num_words": 0, "relation": "at least"}]},
            {**good, "id": "m", "kwargs": [{}, {}]},
            {**good, "id": "s", "instruction_id_list": ["language:response_language"],
             "kwargs": [{"language": "fr"}]}]
    suite = instructed_suite(tmp_path / "bad", rows)
    code, _, err = run_cli("suites", "validate", suite)
    assert code == 2
    data = suite / "data/follow.jsonl"
    assert f"{data}:2 [instruction_id_list[0]]: unknown instruction 'punctuation:no_semicolon'" \
        in err
    assert f"{data}:3 [kwargs[0]]: length_constraints:number_words: kwarg 'num_words' must be " \
        "a whole number of at least 1 (got 0)" in err
    assert f"{data}:4 [kwargs]: must be a list of 1 dicts" in err
    assert f"{data}:5 [instruction_id_list[0]]: instruction 'language:response_language' " \
           "is not supported" in err
    assert "Traceback" not in err
    code, _, err = run_cli("eval", suite, "--model", "fake", "--no-progress")
    assert code == 2 and f"{data}:2 [instruction_id_list[0]]" in err


def test_a_target_is_needed_unless_every_metric_reads_instructions(tmp_path: Path,
                                                                    run_cli: Any) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    yaml = INSTRUCTED_TASK.replace("inst_level_loose_acc]", "inst_level_loose_acc, f1]")
    (root / "suite.yaml").write_text(f"name: m\nversion: 1\nrole: general\ntasks:\n{yaml}")
    write_jsonl(root / "data/follow.jsonl", [{"id": "a", "request": "x",
                                              "instruction_id_list": ["punctuation:no_comma"],
                                              "kwargs": [{}]}])
    code, _, err = run_cli("suites", "validate", root)
    assert code == 2 and "exactly one of 'target' or 'target_field'" in err
