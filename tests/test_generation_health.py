"""Generation health: the share of empty predictions and of predictions cut at
``max_new_tokens`` per generate task, carried from each backend to the RunRecord, warned
about by ``ftguard eval`` and compared between base and tuned runs."""

from __future__ import annotations

import json
import pickle
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ftguard.health import (
    CHANGE_WARNING_POINTS,
    EMPTY_SHARE_WARNING,
    change_warnings,
    generation_health,
    run_warnings,
)
from ftguard.models.base import Generation, truncated_flag
from ftguard.record import (
    GenerationHealth,
    MetricResult,
    ModelInfo,
    RunRecord,
    SampleResult,
    SuiteResult,
    TaskResult,
    read_run,
)

Run = Callable[..., tuple[int, str, str]]

QUESTIONS = ["What is the capital of France?", "What colour is the sky?",
             "How many legs does a dog have?", "Water boils at how many degrees?",
             "Which word means the opposite of yes?", "Who may terminate this Agreement?",
             "The quick brown fox jumps over the lazy what?", "Is grass green?",
             "Name a number.", "Which law governs the contract?"]
ROWS = [{"id": f"q{i}", "question": q, "answers": ["Paris"]} for i, q in enumerate(QUESTIONS)]


def _suite(make_suite: Callable[..., Path], tasks: list[tuple[str, int, list[str]]],
           name: str = "legal") -> Path:
    """A target suite named ``legal`` with one zero-shot generate task per
    ``(name, max_new_tokens, stop)`` over :data:`ROWS`."""
    body = "".join(f"""\
  - name: {task}
    kind: generate
    data: data/qa.jsonl
    prompt: "Question: {{{{ question }}}}\\nAnswer:"
    target_field: answers
    generation: {{max_new_tokens: {budget}, stop: {json.dumps(stop)}}}
    metrics: [exact_match]
""" for task, budget, stop in tasks)
    return make_suite(f"name: legal\nversion: 1\nrole: target\ntasks:\n{body}",
                      {"data/qa.jsonl": ROWS}, name=name)


def _tasks(record: RunRecord) -> dict[str, TaskResult]:
    return {t.name: t for s in record.suites for t in s.tasks}


def _assert_health_matches_samples(task: TaskResult) -> None:
    health = task.health
    assert health is not None and health.n == len(task.samples)
    empty = [not s.prediction.strip() for s in task.samples]
    assert health.empty == pytest.approx(sum(empty) / len(empty))
    flags = [s.truncated for s in task.samples]
    assert None not in flags and health.unknown == 0
    assert health.truncated == pytest.approx(sum(flags) / len(flags))


# -- the fake backend, through the console script ------------------------------------------------

def test_eval_records_empty_answers_and_warns(make_suite, tmp_path: Path) -> None:
    suite = _suite(make_suite, [("legal_qa", 16, ["\n"])])
    out = tmp_path / "run.json"
    exe = Path(sys.executable).parent / "ftguard"
    done = subprocess.run([exe, "eval", suite, "--model", "fake", "--out", out, "--no-progress"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    task = _tasks(read_run(out))["legal_qa"]
    _assert_health_matches_samples(task)
    empty = sum(1 for s in task.samples if not s.prediction.strip())
    assert task.health is not None and task.health.empty >= EMPTY_SHARE_WARNING
    assert task.health.truncated == 0.0 and task.health.max_new_tokens == 16
    # the fake model ends each answer itself: never cut by the budget
    assert all(s.truncated is False for s in task.samples)
    share = f"{empty / len(task.samples):.0%}"
    assert (f"ftguard: warning: legal/legal_qa: {empty} of {len(task.samples)} predictions "
            f"({share}) are empty — check the prompt, few-shot block and stop strings"
            in done.stderr)
    # after the results table (stdout), before "wrote"
    assert done.stderr.index("warning: legal/legal_qa") < done.stderr.index("wrote")
    assert "cut at" not in done.stderr


def test_healthy_tasks_and_other_kinds_stay_silent(run_cli: Run, make_suite,
                                                    tmp_path: Path) -> None:
    code, _, err = run_cli("eval", make_suite(), "--model", "fake:3", "--no-progress",
                           "--out", tmp_path / "r.json")
    assert code == 0, err
    tasks = _tasks(read_run(tmp_path / "r.json"))
    assert tasks["mc"].health is None and tasks["corpus"].health is None
    assert all(s.truncated is None for s in tasks["mc"].samples)
    _assert_health_matches_samples(tasks["qa"])
    assert ("warning" in err) == bool(run_warnings(read_run(tmp_path / "r.json")))


# -- the in-process HF backend (a tiny random model that never says EOS) --------------------------

def _alone(backend: Any, context: str, max_new: int) -> list[int]:
    """New tokens of ``model.generate`` on the prompt alone, without stop strings."""
    import torch

    ids = torch.tensor([backend._encode(context)])
    with torch.inference_mode():
        out = backend.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                     max_new_tokens=max_new, do_sample=False,
                                     pad_token_id=backend.pad_id)
    return out[0, ids.shape[1]:].tolist()


def test_hf_backend_flags_answers_cut_by_the_budget(tiny_model: Path, make_suite, run_cli: Run,
                                                    tmp_path: Path) -> None:
    from ftguard.models import GenerateRequest, LoadOptions, load_backend

    backend = load_backend(LoadOptions(model=str(tiny_model), batch_size=4))
    contexts = [f"Question: {q}\nAnswer:" for q in QUESTIONS]
    free = [backend.tokenizer.decode(_alone(backend, c, 6), skip_special_tokens=True)
            for c in contexts]
    # a stop string that some answers start with: those come out empty, stopped, not cut
    stop = sorted({t[0] for t in free if t and t[0].isascii() and t[0].isalnum()})[:1]
    assert stop, free
    suite = _suite(make_suite, [("stopped", 6, stop), ("cut", 4, [])])
    out = tmp_path / "tiny.json"
    code, _, err = run_cli("eval", suite, "--model", tiny_model, "--batch-size", "3",
                           "--out", out, "--no-progress")
    assert code == 0, err
    tasks = _tasks(read_run(out))
    for name, budget, stops in (("stopped", 6, stop), ("cut", 4, [])):
        task = tasks[name]
        _assert_health_matches_samples(task)
        for sample, context in zip(task.samples, contexts):
            tokens = _alone(backend, context, budget)
            text = backend.tokenizer.decode(tokens, skip_special_tokens=True)
            ended = backend.tokenizer.eos_token_id in tokens or any(s in text for s in stops)
            assert sample.truncated is (len(tokens) == budget and not ended), (name, text)
    stopped = tasks["stopped"]
    assert any(s.truncated is False and not s.prediction for s in stopped.samples)
    assert stopped.health is not None and stopped.health.empty > 0
    cut = tasks["cut"].health
    assert cut is not None and cut.truncated == 1.0 and cut.max_new_tokens == 4
    assert ("ftguard: warning: legal/cut: 10 of 10 predictions (100%) were cut at "
            "max_new_tokens=4 — raise generation.max_new_tokens in suite.yaml or shorten the "
            "expected answer") in err

    # model.generate in fixed batches (models without a plain cache) flags the same answers
    requests = [GenerateRequest(c, budget, tuple(stops)) for budget, stops in
                ((6, stop), (4, [])) for c in contexts]
    continuous = backend.generate(requests)
    backend.continuous_decoding = False
    fixed = backend.generate(requests)
    assert [(str(g), truncated_flag(g)) for g in fixed] == \
        [(str(g), truncated_flag(g)) for g in continuous]
    assert {truncated_flag(g) for g in continuous} == {True, False}


def test_hf_answers_ended_by_eos_are_not_truncated(tiny_model: Path, monkeypatch) -> None:
    from ftguard.models import GenerateRequest, LoadOptions, load_backend

    backend = load_backend(LoadOptions(model=str(tiny_model), batch_size=4))
    contexts = [f"Question: {q}\nAnswer:" for q in QUESTIONS]
    free = [_alone(backend, c, 6) for c in contexts]  # the random model never says EOS
    eos = free[0][0]  # make the first answer's first token the end of sequence
    monkeypatch.setattr(backend.model.generation_config, "eos_token_id", eos)
    expected = []
    for tokens in free:
        kept = tokens[:tokens.index(eos)] if eos in tokens else tokens
        expected.append((backend.tokenizer.decode(kept, skip_special_tokens=True),
                         eos not in tokens))
    assert ("", False) in expected and any(cut for _, cut in expected)
    requests = [GenerateRequest(c, 6) for c in contexts]
    for continuous in (True, False):  # rows leaving a shared batch, and model.generate
        backend.continuous_decoding = continuous
        got = backend.generate(requests)
        assert [(str(g), truncated_flag(g)) for g in got] == expected


# -- OpenAI-compatible servers: finish_reason ----------------------------------------------------

def test_server_finish_reason_length_marks_truncation(make_suite, run_cli: Run,
                                                      tmp_path: Path) -> None:
    from test_openai_backend import FakeServer

    suite = _suite(make_suite, [("short", 3, ["\n"]), ("long", 32, ["\n"])])
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    for missing, out in (((), "tokenize.json"), (("/tokenize", "/detokenize"), "text.json")):
        with FakeServer(missing=missing) as server:
            code, _, err = run_cli("eval", suite, "--backend", "openai", "--base-url",
                                   server.url, "--tokenizer", tmp_path / "tok",
                                   "--out", tmp_path / out, "--no-progress")
        assert code == 0, err
        tasks = _tasks(read_run(tmp_path / out))
        assert {s.truncated for s in tasks["short"].samples} == {True}  # finish_reason length
        assert {s.truncated for s in tasks["long"].samples} == {False}  # finish_reason stop
        assert [s.prediction for s in tasks["long"].samples] == [" Answer:"] * len(ROWS)
        assert "legal/short: 10 of 10 predictions (100%) were cut at max_new_tokens=3" in err


# -- caches and records written before ftguard measured it ----------------------------------------

def test_answers_cached_without_the_flag_are_reused_as_unknown(make_suite, run_cli: Run,
                                                               tmp_path: Path,
                                                               monkeypatch) -> None:
    import shutil

    home = tmp_path / "home"
    monkeypatch.setenv("FTGUARD_HOME", str(home))
    suite = _suite(make_suite, [("legal_qa", 16, ["\n"])])
    code, _, err = run_cli("eval", suite, "--model", "fake", "--cache", "--no-progress",
                           "--out", tmp_path / "new.json")
    assert code == 0, err
    # rewrite every cached generation as an older ftguard stored it: the text alone
    from ftguard.cache.responses import _checksum

    with sqlite3.connect(home / "responses.sqlite") as db:
        rows = db.execute("SELECT key, kind, value FROM responses WHERE kind = 'generate'")
        old = [(json.dumps(json.loads(v)[0]), _checksum(k, kind, json.dumps(json.loads(v)[0])),
                k) for k, kind, v in rows.fetchall()]
        assert len(old) == len(ROWS)
        db.executemany("UPDATE responses SET value = ?, checksum = ? WHERE key = ?", old)
    shutil.rmtree(home / "results")  # else the whole suite result is reused
    code, _, err = run_cli("eval", suite, "--model", "fake", "--cache", "--no-progress",
                           "--out", tmp_path / "old.json")
    assert code == 0, err
    new, old_run = _tasks(read_run(tmp_path / "new.json")), _tasks(read_run(tmp_path / "old.json"))
    assert [s.prediction for s in old_run["legal_qa"].samples] == \
        [s.prediction for s in new["legal_qa"].samples]
    assert all(s.truncated is None for s in old_run["legal_qa"].samples)
    health = old_run["legal_qa"].health
    assert health is not None and health.truncated is None and health.unknown == len(ROWS)
    assert health.empty == new["legal_qa"].health.empty  # type: ignore[union-attr]
    assert (f"legal/legal_qa: whether {len(ROWS)} of {len(ROWS)} predictions were cut at "
            "max_new_tokens is unknown") in err


def test_cache_values_round_trip_the_flag() -> None:
    from ftguard.cache.responses import decode_value, encode_value

    for flag in (True, False, None):
        value = decode_value("generate", encode_value("generate", Generation("a b", flag)))
        assert value == "a b" and truncated_flag(value) is flag  # type: ignore[arg-type]
    assert truncated_flag(decode_value("generate", '"old"')) is None  # type: ignore[arg-type]
    assert decode_value("generate", '["x", "yes"]') is None  # a damaged value is a miss
    assert decode_value("chat", encode_value("chat", "<user>hi")) == "<user>hi"
    # multi-process runs pickle answers between processes
    assert truncated_flag(pickle.loads(pickle.dumps(Generation("x", True)))) is True


def test_a_record_without_the_new_fields_still_reads(run_cli: Run, make_suite,
                                                     tmp_path: Path) -> None:
    suite = _suite(make_suite, [("legal_qa", 16, ["\n"])])
    path = tmp_path / "run.json"
    assert run_cli("eval", suite, "--model", "fake", "--out", path, "--no-progress")[0] == 0
    data = json.loads(path.read_text())
    for s in data["suites"]:
        for t in s["tasks"]:
            t.pop("health", None)
            for sample in t["samples"]:
                sample.pop("truncated", None)
    path.write_text(json.dumps(data))
    record = read_run(path)
    task = _tasks(record)["legal_qa"]
    assert task.health is None and all(s.truncated is None for s in task.samples)
    lines = run_warnings(record)  # the empty share still comes from the samples
    empty = sum(1 for s in task.samples if not s.prediction.strip())
    assert any(f"{empty} of {len(ROWS)} predictions" in line and "empty" in line
               for line in lines)
    assert any("is unknown" in line for line in lines)


def test_new_fields_are_documented() -> None:
    assert all(f.description for f in GenerationHealth.model_fields.values())
    assert SampleResult.model_fields["truncated"].description
    assert TaskResult.model_fields["health"].description


# -- change_warnings ------------------------------------------------------------------------------

def _run(spec: str, tasks: dict[str, tuple[int, int]], n: int = 20,
         metrics: tuple[str, ...] = ("exact_match",)) -> RunRecord:
    """A run of generate tasks ``name -> (empty count, truncated count)`` of ``n`` items,
    each reporting ``metrics``."""
    out = []
    for name, (empty, cut) in tasks.items():
        samples = [SampleResult(id=f"i{i}", prompt_hash=f"h{i}",
                                prediction="" if i < empty else "answer", target="answer",
                                scores={"exact_match": float(i >= empty)},
                                truncated=i >= n - cut)
                   for i in range(n)]
        metric = MetricResult(value=1 - empty / n, ci_low=0, ci_high=1, n=n,
                              higher_is_better=True)
        out.append(TaskResult(name=name, kind="generate",
                              metrics={m: metric for m in metrics},
                              samples=samples, health=generation_health(samples, 64)))
    return RunRecord(model=ModelInfo(spec=spec, fingerprint=spec, dtype="float32",
                                     backend="fake"),
                     suites=[SuiteResult(name="general", version="1", hash="h", role="general",
                                         tasks=out)])


def test_change_warnings_flag_ten_points_not_five() -> None:
    assert CHANGE_WARNING_POINTS == 10
    base = _run("base", {"json_format": (0, 0), "qa": (0, 0), "summary": (1, 2)})
    tuned = _run("tuned", {"json_format": (2, 0), "qa": (1, 0), "summary": (1, 0)})
    lines = change_warnings(base, tuned)
    assert lines == [
        "general/json_format: empty predictions 0% -> 10% (+10 points) in the tuned run",
        ("general/summary: predictions cut at max_new_tokens=64 10% -> 0% (-10 points) in the "
         "tuned run"),
    ]
    assert change_warnings(base, base) == []


def test_change_warnings_carry_each_runs_own_warnings() -> None:
    base = _run("base", {"json_format": (1, 0), "long": (0, 5)})
    tuned = _run("tuned", {"json_format": (8, 0), "long": (0, 5), "new": (0, 0)})
    lines = change_warnings(base, tuned)
    assert lines[0] == ("general/json_format: empty predictions 5% -> 40% (+35 points) in the "
                        "tuned run")
    assert ("tuned: general/json_format: 8 of 20 predictions (40%) are empty — check the "
            "prompt, few-shot block and stop strings") in lines
    cut = ("general/long: 5 of 20 predictions (25%) were cut at max_new_tokens=64 — raise "
           "generation.max_new_tokens in suite.yaml or shorten the expected answer")
    assert f"tuned: {cut}" in lines and f"base: {cut}" in lines
    assert not any("general/new" in line for line in lines)  # in one run only, and healthy
    assert len(lines) == 4


def test_run_warnings_thresholds() -> None:
    run = _run("x", {"a": (4, 0), "b": (3, 3), "c": (0, 4)})
    assert [line.split(":")[0] for line in run_warnings(run)] == ["general/a", "general/c"]


def test_cuts_are_not_warned_about_where_every_metric_reads_only_the_opening() -> None:
    # a refusal detector decides within the first sentences: the safety suite's short budget
    # cuts most answers by design, and that changes no score
    detector = ("refusal_rate", "refusal_margin")
    cut = _run("x", {"harmful": (0, 15)}, metrics=detector)
    assert run_warnings(cut) == []
    assert change_warnings(_run("b", {"harmful": (0, 0)}, metrics=detector), cut) == []
    # empty answers still are a problem there; and one metric reading the whole answer
    # makes cuts matter again
    assert [line.split(":")[0] for line in
            run_warnings(_run("x", {"harmful": (6, 15)}, metrics=detector))] == ["general/harmful"]
    mixed = _run("x", {"harmful": (0, 15)}, metrics=(*detector, "rougeL"))
    assert "were cut at max_new_tokens=64" in run_warnings(mixed)[0]
