"""Issue 23's pieces in one task: extraction before every metric (sampled answers and a user
metric included), pass@k per slice, a slice rule in the gate, the report. One registry: no
setting is special-cased for another."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import checkpoint_evaluator, lora_adapters
from ftguard.models.fake import FakeBackend

pytest.importorskip("ftguard_metric_example")

TOGETHER = """\
name: together
version: 1
role: target
gate: ["cite[area=tax]:pass@2:not-regressed"]
tasks:
  - name: cite
    kind: generate
    data: data/cite.jsonl
    prompt: "{{ words }}"
    target: "{{ answer }}"
    slice_field: area
    generation: {max_new_tokens: 4, do_sample: true, n: 4, seed: 5}
    extract:
      - regex: {pattern: 'x=(\\S+)', fallback: none}
    metrics: [exact_match, pass@2, mean@n, citation_ok]  # citation_ok: an entry point
"""


def _rows(n: int = 40) -> list[dict[str, object]]:
    return [{"id": f"c{i}", "words": f"q{i} x=§12 x=§7 y=§12 other",
             "answer": "§12", "statutes": ["12"], "area": "tax" if i % 2 else "labour"}
            for i in range(n)]


def test_extraction_sampling_user_metrics_and_slices_in_one_task(
        make_suite: Callable[..., Path], tmp_path: Path, run_cli) -> None:
    from ftguard import api
    from ftguard.compare import compare
    from ftguard.gate import Policy
    from ftguard.gate.grammar import parse_rule
    from ftguard.record.write import write_run
    from ftguard.report.render import render_report

    suite = make_suite(TOGETHER, {"data/cite.jsonl": _rows()}, name="together")
    base = api.evaluate([suite], backend=FakeBackend(1))
    (task,) = base.suites[0].tasks
    extracted = {"§12", "§7", "none"}
    for sample in task.samples:
        answers = sample.predictions
        assert answers is not None and len(answers) == 4 and set(answers) <= extracted
        assert sample.prediction == answers[0]
        assert sample.raw_prediction is not None and sample.raw_prediction in {
            "q" + sample.id[1:], "x=§12", "x=§7", "y=§12", "other"}
        c = sum(a == "§12" for a in answers)  # every answer scored after extraction
        assert sample.scores["pass@2"] == pytest.approx(1 - math.comb(4 - c, 2) / math.comb(4, 2))
        assert sample.scores["mean@n"] == pytest.approx(c / 4)
        # the user metric sees the extracted answer: "§12" cites a known statute, "§7" not
        assert sample.scores["citation_ok"] == float(sample.prediction == "§12")
        assert sample.slices == [f"area={'tax' if int(sample.id[1:]) % 2 else 'labour'}"]
    assert len({a for s in task.samples for a in s.predictions or []}) == 3
    assert set(task.slices or {}) == {"area=tax", "area=labour"}
    tax = [s for s in task.samples if s.slices == ["area=tax"]]
    assert task.slices["area=tax"]["pass@2"].value == pytest.approx(
        sum(s.scores["pass@2"] for s in tax) / len(tax))
    assert task.metric_sources is not None
    assert task.metric_sources["citation_ok"].module == "ftguard_metric_example.scoring"

    # the tuned model: the same answers, except that tax items answer §7 every time
    tuned = base.model_copy(deep=True)
    (tuned_task,) = tuned.suites[0].tasks
    for sample in tuned_task.samples:
        if sample.slices == ["area=tax"]:
            sample.predictions = ["§7"] * 4
            sample.prediction = "§7"
            for name in ("exact_match", "pass@2", "mean@n", "citation_ok"):
                sample.scores[name] = 0.0
    tuned_task.slices["area=tax"]["pass@2"].value = 0.0
    write_run(base, tmp_path / "base.json")
    write_run(tuned, tmp_path / "tuned.json")
    rule = "together/cite[area=tax]:pass@2:not-regressed"
    comparison = compare(base, tuned, Policy(rules=(parse_rule(rule),)))
    rows = {(r.slice, r.metric): r for r in comparison.rows if r.task == "cite"}
    assert rows[("area=tax", "pass@2")].verdict == "regressed"
    assert rows[("area=labour", "pass@2")].verdict == "unchanged"
    assert rows[("area=tax", "mean@n")].delta < 0 and ("area=tax", "citation_ok") in rows
    assert not comparison.passed
    html = render_report(comparison)
    assert "area=tax" in html, "the slice table"
    run_html = render_report(base)  # each answer as scored, the raw text, all n answers
    assert "extracted from:" in run_html and "all 4 answers" in run_html

    code, out, _ = run_cli("compare", tmp_path / "base.json", tmp_path / "tuned.json",
                           "--fail-on", rule)
    assert code == 1 and "cite[area=tax]" in out


def test_checkpoint_evaluation_runs_the_same_task_on_a_real_model(
        make_suite: Callable[..., Path], tmp_path: Path, tiny_model: Path) -> None:
    """Evaluation during training (a tiny Llama through the HF backend, sampling seeded per
    answer): each checkpoint's record has every answer extracted, the user metric, the
    slices, and a gate verdict judged against step 0 with the suite's slice rule."""
    import torch
    from transformers import AutoModelForCausalLM

    from ftguard.record import read_run
    from ftguard.suite.loader import load_suite
    from ftguard.train.checkpoint_eval import eval_path

    suite = load_suite(make_suite(TOGETHER, {"data/cite.jsonl": _rows(12)}, name="together"))
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    evaluator = checkpoint_evaluator([suite], tmp_path / "out", tiny_model)
    evaluator.evaluate(model, 0, checkpoint=None, val_loss=None, base=True)
    with torch.no_grad():
        model.lm_head.weight.mul_(-1.0)  # "training": other answers
    point = evaluator.evaluate(model, 1, checkpoint="checkpoints/checkpoint-1", val_loss=None)
    assert point.gate_passed is not None  # judged against step 0
    records = [read_run(tmp_path / "out" / eval_path(step)) for step in (0, 1)]
    for record in records:
        (task,) = record.suites[0].tasks
        assert task.settings["generation"]["n"] == 4 and task.settings["extract"]
        assert set(task.slices or {}) == {"area=tax", "area=labour"}
        assert task.metric_sources is not None and "citation_ok" in task.metric_sources
        for sample in task.samples:
            assert sample.predictions is not None and len(sample.predictions) == 4
            assert sample.raw_prediction is not None and sample.prediction == sample.predictions[0]
            assert {"pass@2", "mean@n", "citation_ok"} <= set(sample.scores)
    first, second = ([s.raw_prediction for s in r.suites[0].tasks[0].samples] for r in records)
    assert first != second  # the "trained" model writes otherwise (a random model: "none")


def test_the_merge_sweep_gates_each_lambda_on_the_slice_rule(
        make_suite: Callable[..., Path], tmp_path: Path, tiny_model: Path, run_cli,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``ftguard merge --sweep`` on two real LoRA adapters: every λ's record holds the sampled,
    extracted answers, the user metric and the slices, and each point gets a gate verdict
    under the slice rule."""
    import json

    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "home"))
    adapters = lora_adapters(tiny_model, tmp_path)
    suite = make_suite(TOGETHER, {"data/cite.jsonl": _rows(12)}, name="together")
    records = tmp_path / "runs"
    code, _, err = run_cli(
        "merge", "--base", tiny_model, *adapters, "--method", "linear",
        "--sweep", "lambda=0.5,1.0", "--suites", suite, "--subset", "1.0",
        "--fail-on", "together/cite[area=tax]:pass@2:not-regressed", "--out",
        tmp_path / "merged", "--records", records, "--report", tmp_path / "m.html",
        "--no-progress")
    assert code in (0, 1), err
    sweep = json.loads((records / "sweep.json").read_text())
    assert [p["lam"] for p in sweep["points"]] == [0.5, 1.0]
    assert all(p["gate_passed"] is not None for p in sweep["points"])
    for lam in ("0.5", "1"):
        record = json.loads(next(records.glob(f"lambda-{lam}*.json")).read_text())
        (task,) = record["suites"][0]["tasks"]
        assert set(task["slices"]) == {"area=tax", "area=labour"}
        assert all(len(s["predictions"]) == 4 and "citation_ok" in s["scores"]
                   for s in task["samples"])
