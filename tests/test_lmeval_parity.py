"""Parity with lm-evaluation-harness 0.4.13 on the same local JSONL tasks and the same model.

One ftguard suite and one lm-eval task folder describe identical tasks (same prompt
template, choices, gold index, target delimiter ``" "``), both run the tiny random Llama of
``conftest.py`` in float32 on the CPU with the same batch size, and every per-choice
log-likelihood, ``acc`` / ``acc_norm`` decision and rolling-perplexity NLL must agree.

The items are chosen to hit the places where a re-implementation usually drifts: a prompt
ending in spaces or a newline (lm-eval moves trailing whitespace from the context into the
continuation), choices with their own leading/trailing spaces, multi-token and non-ASCII
choices (``acc_norm`` divides by characters, not bytes or tokens), a tie, five choices, and
an item where ``acc`` and ``acc_norm`` pick different answers. The perplexity documents
include one longer than the model's 512-token window (several rolling windows) and one with
leading/trailing whitespace (lm-eval's word count then includes empty words).

Everything runs twice: with the tiny tokenizer as built (adds no special tokens, like
SmolLM2's) and with one that prepends BOS by default (like Llama, Gemma, Mistral), where
lm-eval's ``tok_encode`` keeps that BOS in every context and rolling document. Per model,
lm-eval runs once (it is heavy) and ftguard three times (batch sizes 1, 4, 16) to also check
that its numbers do not depend on batching.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from conftest import write_jsonl

pytestmark = pytest.mark.slow

BATCH_SIZE = 4
LL_TOLERANCE = 1e-4
BATCH_TOLERANCE = 1e-5

_SENTENCE = "The contract shall be governed by the laws of the State of New York."
_NOTICE = "Either party may terminate this Agreement upon thirty days written notice."

# (question, tail appended after "Answer:", choices, gold index)
_ITEMS: list[tuple[str, str, list[str], int]] = [
    ("What is the capital of France?", "", ["Paris", "Berlin", "Madrid", "Rome"], 0),
    # The prompt ends in a space: lm-eval scores " " + " blue" after "Answer:".
    ("Which one is a colour?", " ", ["blue", "dog", "four", "yes"], 0),
    ("How many legs does a dog have?", "", ["two", "three", "four", "five"], 2),
    ("Water boils at how many degrees?", "",
     ["one hundred", "ten", "zero", "fifty degrees Celsius"], 0),
    # One short, one long choice: the summed log-likelihood favours "a", the per-character
    # one favours the sentence the tokenizer was trained on (acc and acc_norm disagree).
    ("Finish the sentence: The quick brown fox", "",
     ["a", "jumps over the lazy dog.", "x"], 1),
    # Choices carrying their own whitespace (the delimiter still adds one space).
    ("Is the sky blue?", "", [" yes", "no", "maybe "], 0),
    ("Prompt ending in a space, choice starting with one.", " ",
     [" dog", "cat", "the contract"], 0),
    ("Two trailing spaces.", "  ", ["positive", "negative", "neutral"], 1),
    # A trailing newline is whitespace too: rstrip() moves it into the continuation.
    ("A trailing newline.", "\n", ["true", "false", "one two three"], 1),
    # Non-ASCII: acc_norm divides by characters, byte-level BPE splits into several tokens.
    ("Which word is French?", "", ["café", "naïve", "über", "日本語"], 0),
    ("Which clause is about notice?", "", [_SENTENCE, _NOTICE, "Grass is green."], 1),
    # Identical choices get identical scores; the tie goes to the first (np.argmax).
    ("A tie.", "", ["same", "same", "other"], 1),
    ("Count to five.", "", ["one", "two", "three", "four", "five"], 4),
    ("Pick a number.", "", ["1", "10", "100", "1000"], 3),
    ("Review: I loved this film.", "", ["positive", "negative", "neutral\n"], 0),
]

MC_ROWS = [{"id": f"mc{i:02d}", "question": q, "tail": tail, "choices": choices, "answer": gold}
           for i, (q, tail, choices, gold) in enumerate(_ITEMS)]

PPL_ROWS = [
    {"id": "p1", "text": "The quick brown fox jumps over the lazy dog."},
    {"id": "p2", "text": "Water boils at one hundred degrees. The sky is blue. Grass is green."},
    {"id": "p3", "text": "  Leading and trailing whitespace count as empty words in lm-eval. "},
    {"id": "p4", "text": "Unicode: café, naïve, über, 日本語 — bytes differ from characters."},
    # Longer than the tiny model's 512 positions: several rolling windows.
    {"id": "p5", "text": " ".join([_SENTENCE, _NOTICE] * 25)},
]

SUITE_YAML = """\
name: parity
version: 1
role: general
tasks:
  - name: mc
    kind: choice
    data: data/mc.jsonl
    prompt: "Question: {{ question }}\\nAnswer:{{ tail }}"
    choices_field: choices
    target_index: "{{ answer }}"
    target_delimiter: " "
    metrics: [acc, acc_norm]
  - name: ppl
    kind: perplexity
    data: data/ppl.jsonl
    prompt: "{{ text }}"
    metrics: [word_perplexity, bits_per_byte]
"""

LMEVAL_MC_YAML = """\
task: parity_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{ question }}}}\\nAnswer:{{{{ tail }}}}"
doc_to_choice: choices
doc_to_target: answer
target_delimiter: " "
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""

LMEVAL_PPL_YAML = """\
task: parity_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: text
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The ftguard suite and the equivalent lm-eval task folder, over the same JSONL files."""
    root = tmp_path_factory.mktemp("parity")
    suite = root / "suite"
    mc = write_jsonl(suite / "data" / "mc.jsonl", MC_ROWS)
    ppl = write_jsonl(suite / "data" / "ppl.jsonl", PPL_ROWS)
    (suite / "suite.yaml").write_text(SUITE_YAML, encoding="utf-8")
    tasks = root / "lmeval_tasks"
    tasks.mkdir()
    (tasks / "parity_mc.yaml").write_text(LMEVAL_MC_YAML.format(data=json.dumps(str(mc))),
                                          encoding="utf-8")
    (tasks / "parity_ppl.yaml").write_text(LMEVAL_PPL_YAML.format(data=json.dumps(str(ppl))),
                                           encoding="utf-8")
    return {"suite": suite, "tasks": tasks}


def _with_bos_tokenizer(source: Path, target: Path) -> Path:
    """A copy of ``source`` whose tokenizer prepends BOS by default, as Llama/Gemma/Mistral do."""
    import shutil

    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    shutil.copytree(source, target)
    tokenizer = AutoTokenizer.from_pretrained(source)
    bos = (tokenizer.bos_token, tokenizer.bos_token_id)
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos[0]} $A", pair=f"{bos[0]} $A $B", special_tokens=[bos])
    tokenizer.save_pretrained(target)
    assert AutoTokenizer.from_pretrained(target)("fox")["input_ids"][0] == bos[1]
    return target


@pytest.fixture(scope="module", params=["plain", "bos"])
def model(request: pytest.FixtureRequest, tiny_model: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model as built (no special tokens added), and with a BOS-adding tokenizer."""
    if request.param == "plain":
        return tiny_model
    return _with_bos_tokenizer(tiny_model, tmp_path_factory.mktemp("bos") / "model")


@pytest.fixture(scope="module")
def lmeval(workspace: dict[str, Path], model: Path) -> dict[str, Any]:
    """One lm-eval run of both tasks: ``{"results": ..., "mc": {id: sample}, "ppl": {...}}``."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(workspace["tasks"]), include_defaults=False)
    out = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={model},dtype=float32",
        tasks=["parity_mc", "parity_ppl"],
        device="cpu", batch_size=BATCH_SIZE, log_samples=True, task_manager=manager)
    assert out is not None
    return {"results": out["results"],
            "mc": {s["doc"]["id"]: s for s in out["samples"]["parity_mc"]},
            "ppl": {s["doc"]["id"]: s for s in out["samples"]["parity_ppl"]}}


def _ftguard(suite: Path, model_dir: Path, batch_size: int) -> dict[str, Any]:
    import ftguard
    from ftguard import LoadOptions

    record = ftguard.evaluate([suite], load=LoadOptions(model=str(model_dir), device="cpu",
                                                        dtype="float32", batch_size=batch_size))
    return {t.name: t for t in record.suites[0].tasks}


@pytest.fixture(scope="module")
def ours(workspace: dict[str, Path], model: Path) -> dict[int, dict[str, Any]]:
    """ftguard's task results at batch sizes 1, BATCH_SIZE and 16."""
    return {bs: _ftguard(workspace["suite"], model, bs) for bs in (1, BATCH_SIZE, 16)}


def test_choice_loglikelihoods_match_lmeval(ours, lmeval) -> None:
    samples = ours[BATCH_SIZE]["mc"].samples
    assert [s.id for s in samples] == [r["id"] for r in MC_ROWS]
    for sample in samples:
        theirs = lmeval["mc"][sample.id]
        # resps: one [(ll, is_greedy)] per choice; filtered_resps: the (ll, is_greedy) pairs.
        expected = [resp[0][0] for resp in theirs["resps"]]
        assert [f[0] for f in theirs["filtered_resps"]] == expected
        assert sample.loglikelihoods == pytest.approx(expected, abs=LL_TOLERANCE), sample.id


def test_requests_are_the_same_strings(lmeval) -> None:
    """lm-eval scored exactly the (context, " " + choice) pairs ftguard builds."""
    for row in MC_ROWS:
        context = f"Question: {row['question']}\nAnswer:{row['tail']}"
        expected = [(context, " " + choice) for choice in row["choices"]]
        assert [tuple(a[:2]) for a in lmeval["mc"][row["id"]]["arguments"]] == expected


def test_acc_and_acc_norm_match_lmeval(ours, lmeval) -> None:
    task = ours[BATCH_SIZE]["mc"]
    for sample in task.samples:
        theirs = lmeval["mc"][sample.id]
        assert sample.scores["acc"] == theirs["acc"], sample.id
        assert sample.scores["acc_norm"] == theirs["acc_norm"], sample.id
    results = lmeval["results"]["parity_mc"]
    assert task.metrics["acc"].value == pytest.approx(results["acc,none"], abs=1e-12)
    assert task.metrics["acc_norm"].value == pytest.approx(results["acc_norm,none"], abs=1e-12)
    assert task.metrics["acc"].n == results["sample_len"] == len(MC_ROWS)


def test_items_exercise_the_edge_cases(ours, lmeval, model: Path) -> None:
    """Guard the test's own power: acc and acc_norm disagree somewhere, the tie ties, and some
    question has several one-token choices (scored from one shared row, like lm-eval's
    one-token-continuation cache)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    one_token = [sum(len(tokenizer(" " + c, add_special_tokens=False)["input_ids"]) == 1
                     for c in row["choices"]) for row in MC_ROWS]
    assert max(one_token) >= 2, one_token
    samples = {s.id: s for s in ours[BATCH_SIZE]["mc"].samples}
    disagree = [i for i, s in samples.items() if s.scores["acc"] != s.scores["acc_norm"]]
    assert "mc04" in disagree, "acc and acc_norm should pick different answers on mc04"
    assert all(lmeval["mc"][i]["acc"] != lmeval["mc"][i]["acc_norm"] for i in disagree)
    tie = samples["mc11"].loglikelihoods
    assert tie[0] == tie[1] and samples["mc11"].scores["acc"] == 0.0  # gold is the 2nd "same"


def test_perplexity_matches_lmeval(ours, lmeval) -> None:
    task = ours[BATCH_SIZE]["ppl"]
    for sample in task.samples:
        nll, _, words, n_bytes = sample.stats["word_perplexity"]
        theirs = lmeval["ppl"][sample.id]
        (loglikelihood,) = theirs["filtered_resps"]  # summed over the rolling windows
        assert -nll == pytest.approx(loglikelihood, rel=LL_TOLERANCE), sample.id
        # lm-eval's per-sample metric values are (loglikelihood, words|bytes) pairs.
        assert theirs["word_perplexity"][1] == words
        assert theirs["bits_per_byte"][1] == n_bytes
    results = lmeval["results"]["parity_ppl"]
    assert task.metrics["word_perplexity"].value == pytest.approx(
        results["word_perplexity,none"], rel=LL_TOLERANCE)
    assert task.metrics["bits_per_byte"].value == pytest.approx(
        results["bits_per_byte,none"], rel=LL_TOLERANCE)
    # byte_perplexity is 2 ** bits_per_byte; ftguard does not report it separately.
    assert 2 ** task.metrics["bits_per_byte"].value == pytest.approx(
        results["byte_perplexity,none"], rel=LL_TOLERANCE)


def test_long_document_uses_several_windows(ours) -> None:
    _, tokens, _, _ = next(s for s in ours[BATCH_SIZE]["ppl"].samples
                           if s.id == "p5").stats["word_perplexity"]
    assert tokens > 2 * 512


@pytest.mark.parametrize("batch_size", [1, 16])
def test_loglikelihoods_do_not_depend_on_batch_size(ours, batch_size: int) -> None:
    reference, other = ours[BATCH_SIZE], ours[batch_size]
    for a, b in zip(reference["mc"].samples, other["mc"].samples, strict=True):
        assert b.loglikelihoods == pytest.approx(a.loglikelihoods, abs=BATCH_TOLERANCE), a.id
        assert b.scores == a.scores
    for a, b in zip(reference["ppl"].samples, other["ppl"].samples, strict=True):
        nll_a, nll_b = a.stats["word_perplexity"][0], b.stats["word_perplexity"][0]
        assert math.isclose(nll_a, nll_b, rel_tol=BATCH_TOLERANCE, abs_tol=BATCH_TOLERANCE), a.id
