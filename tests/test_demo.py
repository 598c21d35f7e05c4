"""``ftguard demo``: the pipeline on a tiny model and tiny suites (fast), and the real quick
demo on the embedded SmolLM2 from another working directory (slow)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import MC_ROWS, MC_TASK, suite_yaml, write_jsonl
from ftguard.demo import DemoOptions, DemoPlan, run_demo
from ftguard.demo_story import tell
from ftguard.record import read_comparison, read_run

TRAIN = [{"instruction": f"Question: {r['question']}", "input": "",
          "output": r["choices"][r["answer"]]} for r in MC_ROWS] * 4
PLAN = DemoPlan(subset=0.5, checkpoint_subset=0.5, max_steps=4, eval_every=2, lr=1e-3,
                batch_size=2, max_length=64, lora_r=4)
CORPUS_TASK = """\
  - name: corpus
    kind: perplexity
    data: data/corpus.jsonl
    prompt: "{{ text }}"
"""
DOCS = [{"id": f"d{i}", "text": f"Clause {i}. Either party may terminate this Agreement."}
        for i in range(4)]


@pytest.fixture
def demo_suites(tmp_path: Path) -> Path:
    root = tmp_path / "suites"
    for name, role, extra, metrics in (("legal", "target", "train.jsonl", ""),
                                       ("general", "general", "replay.jsonl",
                                        "    metrics: [acc, brier, ece]\n")):
        (root / name).mkdir(parents=True)
        (root / name / "suite.yaml").write_text(
            suite_yaml(name, role, MC_TASK + metrics + CORPUS_TASK), encoding="utf-8")
        write_jsonl(root / name / "data" / "mc.jsonl", MC_ROWS)
        write_jsonl(root / name / "data" / "corpus.jsonl", DOCS)
        write_jsonl(root / name / extra, TRAIN)
    return root


@pytest.fixture
def options(tmp_path: Path, tiny_model: Path, demo_suites: Path,
            monkeypatch: pytest.MonkeyPatch) -> DemoOptions:
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "home"))  # empty caches
    return DemoOptions(out=tmp_path / "runs" / "demo", report=tmp_path / "reports" / "demo.html",
                       suites=demo_suites, model=str(tiny_model), custom_plan=PLAN)


def test_demo_runs_every_stage_then_reruns_from_caches(options: DemoOptions,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    result = run_demo(options, say=said.append)
    out = options.out
    for path in ("base.json", "tuned.json", "comparison.json", "train/train_record.json",
                 "train/adapter/adapter_config.json"):
        assert (out / path).is_file(), path
    comparison = read_comparison(out / "comparison.json")
    assert {r.role for r in comparison.rows} == {"target", "general"}
    # scoring tasks in full (a paired test needs the items), the perplexity task sampled
    for record in (result.base, result.tuned):
        assert {(s.name, t.name): len(t.samples) for s in record.suites for t in s.tasks} == {
            (suite, task): n for suite in ("legal", "general")
            for task, n in (("mc", len(MC_ROWS)), ("corpus", len(DOCS) // 2))}
    assert read_run(out / "tuned.json").model.fingerprint != \
        read_run(out / "base.json").model.fingerprint
    html = options.report.read_text(encoding="utf-8")
    assert "Training" in html and "<script src=" not in html
    assert [s[:5] for s in said if s.startswith("[")] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]",
                                                           "[5/5]"]
    # checkpoints were evaluated on half the items; the base from the response cache
    train = result.train
    assert [c.step for c in train.checkpoints] == [0, 2, 4]
    assert train.base.fingerprint == result.base.model.fingerprint  # so the cache serves it
    story = tell(result, options)
    assert "What the fine-tune bought" in story and "What it cost" in story
    behaviour = story.split("What it did to behaviour")[1].split("\n\n")[0]
    for metric in ("ece", "brier"):  # calibration, its own section, lower is better
        row = next(r for r in comparison.rows if r.metric == metric)
        assert re.search(rf"mc {metric} +{row.base:.3f} -> {row.tuned:.3f} ", behaviour)
        assert behaviour.count(f"mc {metric} ") == 1 and "(lower is better)" in behaviour
    assert "mc ece" not in story.split("What it cost")[1].split("What it did")[0]
    assert f"Gate: {'PASS' if comparison.passed else 'FAIL'}" in story
    assert str(options.report) in story

    # second run: no training and no model at all
    import ftguard.api
    import ftguard.train.run

    def must_not_run(*args, **kwargs):
        raise AssertionError("the second demo run must reuse the first")

    monkeypatch.setattr(ftguard.api, "load_backend", must_not_run)
    monkeypatch.setattr(ftguard.train.run, "run_training", must_not_run)
    said.clear()
    again = run_demo(options, say=said.append)
    assert any("reusing the finished fine-tune" in s for s in said)
    assert again.comparison.rows == result.comparison.rows


def test_interrupted_demo_keeps_what_it_had_and_finishes_on_the_next_run(
        options: DemoOptions, monkeypatch: pytest.MonkeyPatch) -> None:
    import ftguard.api

    real = ftguard.api.evaluate

    def interrupted_on_the_tuned_model(suites, **kwargs):
        if kwargs.get("load") is not None and kwargs["load"].adapter is not None:
            raise KeyboardInterrupt
        return real(suites, **kwargs)

    monkeypatch.setattr(ftguard.api, "evaluate", interrupted_on_the_tuned_model)
    with pytest.raises(KeyboardInterrupt):
        run_demo(options, say=lambda s: None)
    base = read_run(options.out / "base.json")  # complete and valid
    assert not (options.out / "tuned.json").exists()
    assert not (options.out / "comparison.json").exists()
    monkeypatch.setattr(ftguard.api, "evaluate", real)
    said: list[str] = []
    result = run_demo(options, say=said.append)
    assert any("reusing the finished fine-tune" in s for s in said)
    assert result.base.model.fingerprint == base.model.fingerprint


def test_changed_settings_train_again(options: DemoOptions) -> None:
    run_demo(options, say=lambda s: None)
    options.replay = True  # another training mix: another fine-tune
    said: list[str] = []
    result = run_demo(options, say=said.append)
    assert not any("reusing" in s for s in said)
    assert result.train.data.sources and len(result.train.data.sources) == 2


def test_missing_suites_are_a_clear_error(run_cli, tmp_path: Path) -> None:
    (tmp_path / "legal").mkdir()
    code, _, err = run_cli("demo", "--suites", tmp_path, "--out", tmp_path / "runs")
    assert code == 2
    assert "no legal/suite.yaml" in err and "--suites" in err


@pytest.mark.slow
def test_quick_demo_on_the_embedded_model_from_another_directory(
        tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "FTGUARD_HOME": os.environ.get("FTGUARD_HOME", "")}
    # one task of each kind (the real quick demo evaluates all eleven; its timing is README's):
    # every stage on the embedded model, in a third of the time
    chosen = ["legal/clause_type", "legal/legal_qa", "general/world_knowledge",
              "general/english_corpus"]
    args = ["demo", "--quick", "--no-progress", "--tasks", ",".join(chosen)]
    started = time.perf_counter()
    first = subprocess.run([sys.executable, "-m", "ftguard", *args], check=False, cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Gate: " in first.stdout and "What it cost" in first.stdout
    assert (tmp_path / "reports" / "demo.html").is_file()
    comparison = json.loads((tmp_path / "runs" / "demo" / "comparison.json").read_text())
    # world_knowledge's variants come with it (its consistency needs them)
    variants = {f"general/world_knowledge@{v}" for v in ("terse", "listed", "listed_reversed")}
    assert {f"{r['suite']}/{r['task']}" for r in comparison["rows"]} == {*chosen, *variants}
    assert {r["role"] for r in comparison["rows"]} == {"target", "general"}
    first_seconds = time.perf_counter() - started

    # the second run (in this process: no second interpreter start-up) finds everything the
    # first one wrote to disk, so it neither trains nor loads a model
    import ftguard.api
    import ftguard.train.run

    def must_not_run(*args, **kwargs):
        raise AssertionError("the second demo run must reuse the first")

    monkeypatch.setattr(ftguard.api, "load_backend", must_not_run)
    monkeypatch.setattr(ftguard.train.run, "run_training", must_not_run)
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    code, out, err = run_cli(*args)
    assert code == 0, err[-3000:]
    assert "reusing the finished fine-tune" in out and "Gate: " in out
    assert json.loads((tmp_path / "runs" / "demo" / "comparison.json").read_text())["rows"] == \
        comparison["rows"]
    assert time.perf_counter() - started < first_seconds / 3


def test_full_demo_scores_the_scoring_tasks_of_the_shipped_suites_in_full() -> None:
    from ftguard.api import load_suites
    from ftguard.demo import FULL, QUICK, _sample_words, _suites, _task_subset

    suites = load_suites(list(_suites(None).values()))
    sampled = {"legal/doctrine_mc": 40, "general/world_knowledge": 60,
               "general/commonsense": 110, "general/instructions": 8, "safety/harmful": 20,
               "safety/benign": 20}
    # clause_type (classify) in full; the tasks with variants and the behaviour tasks by count
    assert _task_subset(suites, FULL) == {"legal/clause_type": 1.0, **sampled}
    assert _task_subset(suites, QUICK) == {"safety/harmful": 6, "safety/benign": 6}
    assert QUICK.skip_tasks == ("general/instructions",)
    # a task not evaluated (no safety suite, or --tasks) is not named
    assert _task_subset(suites[:2], FULL) == {"legal/clause_type": 1.0, **{
        k: v for k, v in sampled.items() if not k.startswith("safety/")}}
    assert _sample_words(_task_subset(suites, FULL), FULL) == (
        "scoring tasks in full, 40 items of legal/doctrine_mc, 60 items of "
        "general/world_knowledge, 110 items of general/commonsense, 8 items of "
        "general/instructions, 20 items of safety/harmful, 20 items of safety/benign, 12% of "
        "the others")
    assert _sample_words({}, QUICK) == "6% of every task"
