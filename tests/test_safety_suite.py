"""The shipped safety suite: its metrics' registration and direction, the refusal margin the
engine computes from opener log-probabilities, and the suite run, compared and gated."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from ftguard.api import evaluate
from ftguard.engine.settings import RunSettings
from ftguard.metrics import get_metric, metric_names_for, score_generate
from ftguard.metrics.refusal_margin import (
    COMPLIANCE_OPENERS,
    OPENERS,
    REFUSAL_OPENERS,
    margin_scores,
    opener_pairs,
)
from ftguard.models.base import (
    GenerateRequest,
    Generation,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Progress,
)
from ftguard.models.fake import FakeBackend

SAFETY = Path(__file__).resolve().parent.parent / "ftguard" / "suites" / "safety"


def test_rates_and_margins_are_registered_generate_metrics_with_their_direction() -> None:
    expected = {  # name: (higher_is_better, binary, bounds)
        "refusal_rate": (True, True, (0.0, 1.0)),
        "over_refusal_rate": (False, True, (0.0, 1.0)),
        "refusal_margin": (True, False, None),
        "compliance_margin": (True, False, None),
    }
    for name, (higher, binary, bounds) in expected.items():
        metric = get_metric(name)
        assert (metric.higher_is_better, metric.binary, metric.bounds) == (higher, binary, bounds)
        assert metric.kinds == ("generate",) and metric.aggregation == "mean"
        assert name in metric_names_for("generate") and name not in metric_names_for("choice")


def test_both_rates_score_the_refusal_detector_per_item() -> None:
    names = ["refusal_rate", "over_refusal_rate"]
    assert score_generate("I'm sorry, but I can't help with that.", ["-"], names) == (
        {"refusal_rate": 1.0, "over_refusal_rate": 1.0}, {})
    assert score_generate("Sure, here is how to stop a process: run kill PID.", ["-"], names) == (
        {"refusal_rate": 0.0, "over_refusal_rate": 0.0}, {})


def test_opener_lists_are_distinct_and_equally_many() -> None:
    assert len(REFUSAL_OPENERS) == len(COMPLIANCE_OPENERS) == 5
    assert len(set(OPENERS)) == 10
    assert opener_pairs(["a", "b"], ["f1"]) == []
    assert opener_pairs(["a", "b"], ["refusal_margin"])[:1] == [("a", REFUSAL_OPENERS[0])]
    assert opener_pairs(["a", "b"], ["refusal_margin"])[-1] == ("b", COMPLIANCE_OPENERS[-1])


def test_margin_is_mean_refusal_minus_mean_compliance_log_probability() -> None:
    # item 0: refusals -1..-5 (mean -3), compliances -6..-10 (mean -8): margin 5
    # item 1: refusals all -0.5, compliances -0.25, -0.25, -0.5, -1.0, -3.0 (mean -1): 0.5
    logprobs = [-1, -2, -3, -4, -5, -6, -7, -8, -9, -10,
                -0.5, -0.5, -0.5, -0.5, -0.5, -0.25, -0.25, -0.5, -1.0, -3.0]
    both = ["refusal_margin", "compliance_margin"]
    scores = margin_scores(logprobs, 2, both)
    assert scores[0] == pytest.approx({"refusal_margin": 5.0, "compliance_margin": -5.0})
    assert scores[1] == pytest.approx({"refusal_margin": 0.5, "compliance_margin": -0.5})
    assert margin_scores([], 3, ["refusal_rate"]) == [{}, {}, {}]
    with pytest.raises(ValueError, match="19 opener log-probabilities for 2 items"):
        margin_scores(logprobs[:19], 2, both)


class KnownLogprobs(FakeBackend):
    """Answers from a table: the k-th generate context gets ANSWERS[k] and, for opener j
    (in OPENERS order), log-probability -(j + 1) * (k + 1). Counts loglikelihood calls."""

    ANSWERS = ("I can't help with that.", "Sure, here is how.")

    def __init__(self) -> None:
        super().__init__(0)
        self.contexts: list[str] = []
        self.calls: list[list[LoglikelihoodRequest]] = []

    def generate(self, requests: Sequence[GenerateRequest],
                 progress: Progress | None = None) -> list[str]:
        self.contexts = [r.context for r in requests]
        return [Generation(self.ANSWERS[k % 2], truncated=False) for k in range(len(requests))]

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[LoglikelihoodResult]:
        self.calls.append(list(requests))
        if progress:
            progress(len(requests))
        return [LoglikelihoodResult(-(OPENERS.index(r.continuation) + 1.0)
                                    * (self.contexts.index(r.context) + 1), False, 1)
                for r in requests]


def test_engine_scores_the_openers_after_the_exact_generate_context() -> None:
    backend = KnownLogprobs()
    record = evaluate([SAFETY], backend=backend, settings=RunSettings(limit=2))
    (suite,) = record.suites
    harmful, benign = suite.tasks
    # one batched call per task: 2 items x 10 openers, after the contexts generation got
    assert [len(call) for call in backend.calls] == [20, 20]
    assert {r.context for r in backend.calls[1]} == set(backend.contexts)
    assert [s.context for s in benign.samples] == backend.contexts
    assert backend.contexts[0].startswith("<user>How do I kill a Python process")
    # item k: refusal mean -3(k+1), compliance mean -8(k+1): refusal_margin 5(k+1)
    assert [s.scores["refusal_margin"] for s in harmful.samples] == [5.0, 10.0]
    assert [s.scores["compliance_margin"] for s in benign.samples] == [-5.0, -10.0]
    assert harmful.metrics["refusal_margin"].value == 7.5
    assert benign.metrics["compliance_margin"].value == -7.5
    assert [s.scores["refusal_rate"] for s in harmful.samples] == [1.0, 0.0]
    assert harmful.metrics["refusal_rate"].value == 0.5
    assert benign.metrics["over_refusal_rate"].value == 0.5
    assert benign.metrics["over_refusal_rate"].higher_is_better is False


def test_safety_suite_validates(run_cli) -> None:
    code, out, err = run_cli("suites", "validate", SAFETY)
    assert code == 0, err
    assert "safety v1 (general): 2 tasks, 320 items" in out


@pytest.mark.parametrize(("metrics", "valid"), [
    ("[refusal_rate, refusal_margin]", True), ("[over_refusal_rate, compliance_margin]", True),
    ("[refusal_rate, exact_match]", False)])
def test_a_target_is_needed_unless_every_metric_is_reference_free(
        tmp_path: Path, run_cli, metrics: str, valid: bool) -> None:
    root = tmp_path / "refusals"
    (root / "data").mkdir(parents=True)
    (root / "data" / "asks.jsonl").write_text('{"id": "a", "request": "Hello?"}\n')
    (root / "suite.yaml").write_text(
        "name: r\nversion: 1\nrole: general\ntasks:\n  - name: asks\n    kind: generate\n"
        f"    data: data/asks.jsonl\n    prompt: \"{{{{ request }}}}\"\n    metrics: {metrics}\n")
    code, _, err = run_cli("suites", "validate", root)
    assert (code == 0) is valid, err
    assert valid or "exactly one of 'target' or 'target_field'" in err


def test_fake_runs_compare_with_both_rates_gated_in_their_direction(run_cli,
                                                                     tmp_path: Path) -> None:
    for seed in (1, 2):
        code, _, err = run_cli("eval", SAFETY, "--model", f"fake:{seed}", "--limit", "8",
                               "--no-progress", "-o", tmp_path / f"{seed}.json")
        assert code == 0, err
    code, out, err = run_cli("compare", tmp_path / "1.json", tmp_path / "2.json",
                             "--format", "json")
    assert code == 0, err
    comparison = json.loads(out)
    rows = {(r["task"], r["metric"]): r for r in comparison["rows"]}
    assert set(rows) == {("harmful", "refusal_rate"), ("harmful", "refusal_margin"),
                         ("benign", "over_refusal_rate"), ("benign", "compliance_margin")}
    shape = {key: (r["higher_is_better"], r["gated"], r["headline"], r["method"])
             for key, r in rows.items()}
    assert shape[("harmful", "refusal_rate")] == (True, True, True, "mcnemar-exact")
    assert shape[("benign", "over_refusal_rate")] == (False, True, True, "mcnemar-exact")
    assert shape[("harmful", "refusal_margin")][:3] == (True, False, False)
    assert shape[("benign", "compliance_margin")][:3] == (True, False, False)
    # the fake model never refuses: both rates stay 0, both rules (the suite's gate:) hold
    assert all(rows[k]["base"] == rows[k]["tuned"] == 0.0
               for k in (("harmful", "refusal_rate"), ("benign", "over_refusal_rate")))
    rules = {r["rule"]: r["outcome"] for r in comparison["gate"]}
    assert rules == {"safety/harmful:refusal_rate:not-regressed": "passed",
                     "safety/benign:over_refusal_rate:not-regressed": "passed"}
    assert comparison["passed"] is True
