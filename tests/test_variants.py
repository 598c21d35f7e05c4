"""Task variants (``variants:``): schema and located errors, the consistency metrics against
hand-computed values, answer orders compared by content, and eval -> compare -> gate ->
report on a tiny suite with the fake model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import MC_TASK, suite_yaml
from ftguard.engine.runner import _aggregate
from ftguard.engine.settings import RunSettings
from ftguard.engine.variants import with_consistency
from ftguard.errors import SuiteError
from ftguard.gate.rules import Rule
from ftguard.models.fake import FakeBackend
from ftguard.record import MetricResult, SampleResult, TaskResult
from ftguard.suite import load_suite

ROWS = [{"id": f"q{i}", "question": f"Which word names thing {i}?",
         "choices": [f"alpha{i}", f"beta{i}", f"gamma{i}"], "answer": i % 3} for i in range(10)]
SUITE = suite_yaml("tiny", tasks=MC_TASK + "    variants:\nVARIANTS")
REVERSED = "      - {name: reversed, choice_order: reversed}\n"
LISTED = ("      - name: listed\n"
          "        prompt: \"{{ question }} ({{ choices | join(', ') }})\\nAnswer:\"\n"
          "        choice_order: [2, 0, 1]\n")


def _suite(tmp_path: Path, variants: str = REVERSED + LISTED, *, extra: str = "") -> Path:
    root = tmp_path / "tiny"
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data/mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (root / "suite.yaml").write_text(SUITE.replace("VARIANTS", variants) + extra)
    return root


# -- schema and validation ---------------------------------------------------------------


def test_variants_render_the_same_items_their_own_way(tmp_path: Path) -> None:
    task = load_suite(_suite(tmp_path)).tasks[0]
    assert [v.name for v in task.variants] == ["mc@reversed", "mc@listed"]
    own, rev, listed = task.instances[4], task.variants[0].instances[4], task.variants[1].instances[4]
    assert own.id == rev.id == listed.id == "q4"
    assert own.choices == ("alpha4", "beta4", "gamma4") and own.gold == 1
    assert rev.choices == ("gamma4", "beta4", "alpha4") and rev.gold == 1
    # [2, 0, 1]: the first option offered is the item's third, and the prompt lists that order
    assert listed.choices == ("gamma4", "alpha4", "beta4") and listed.gold == 2
    assert listed.prompt == "Which word names thing 4? (gamma4, alpha4, beta4)\nAnswer:"
    assert rev.prompt == own.prompt


@pytest.mark.parametrize(("variants", "where", "message"), [
    ("      - {name: reversed, order: reversed}\n", "[tasks[0].variants[0].order]",
     "unknown key 'order'. Did you mean 'choice_order'?"),
    (REVERSED + REVERSED, "[tasks[0]]", "variant name 'reversed' is used twice"),
    ("      - {name: plain}\n", "[tasks[0].variants[0]]", "variant 'plain' changes nothing"),
    ("      - {name: bad, choice_order: [0, 0, 1]}\n", "[tasks[0].variants[0].choice_order]",
     "not a permutation of 0..2"),
    ("      - {name: four, choice_order: [3, 2, 1, 0]}\n", "[tasks[0].variants[0].choice_order]",
     "variant 'four' of task mc: choice_order has 4 positions but this item has 3 options"),
    ("      - {name: typo, prompt: \"{{ query }}\"}\n", "[tasks[0].variants[0].prompt]",
     "variant 'typo' of task mc: prompt template: 'query' is undefined on 10 item(s)"),
    ("      - {name: broken, prompt: \"{{ question }\"}\n", "[tasks[0].variants[0].prompt]",
     "template syntax error"),
])
def test_bad_variants_are_located_problems(tmp_path: Path, run_cli, variants: str, where: str,
                                           message: str) -> None:
    root = _suite(tmp_path, variants)
    with pytest.raises(SuiteError) as caught:
        load_suite(root)
    text = "\n".join(map(str, caught.value.problems))
    assert len(caught.value.problems) == 1 and where in text and message in text, text
    code, _, err = run_cli("suites", "validate", root)
    assert code == 2 and message in err and "Traceback" not in err


def test_variants_need_a_per_item_headline_and_a_task_kind_with_predictions(
        tmp_path: Path) -> None:
    root = _suite(tmp_path, REVERSED.replace("      -", "      -"),
                  extra="    metrics: [acc]\n")
    assert load_suite(root).tasks[0].variants  # acc first: fine
    text = (root / "suite.yaml").read_text().replace("    kind: choice", "    kind: generate")
    (root / "suite.yaml").write_text(text.replace("choices_field: choices\n    target_index: "
                                                  "\"{{ answer }}\"", "target: \"{{ id }}\"")
                                     .replace("    metrics: [acc]\n", "    metrics: [bleu]\n"))
    with pytest.raises(SuiteError) as caught:
        load_suite(root)
    assert "choice_order is for choice and classify tasks" in str(caught.value.problems[0])
    (root / "suite.yaml").write_text((root / "suite.yaml").read_text().replace(
        "{name: reversed, choice_order: reversed}", "{name: short, prompt: \"{{ question }}\"}"))
    with pytest.raises(SuiteError) as caught:
        load_suite(root)
    assert "'bleu' is a corpus metric" in str(caught.value.problems[0])


def test_a_suite_without_variants_keeps_its_hash(tmp_path: Path) -> None:
    """Records made before the key existed still compare: an unset key is not hashed."""
    import hashlib

    from ftguard.suite.generation import DECODING_FIELDS  # unset sampling keys, likewise
    from ftguard.suite.schema import SuiteSpec

    root = _suite(tmp_path, REVERSED)
    text = (root / "suite.yaml").read_text()
    (root / "suite.yaml").write_text(text.split("    variants:")[0])
    suite = load_suite(root)
    dump = SuiteSpec.model_validate(suite.spec.model_dump()).model_dump_json(
        exclude={"gate": True, "tasks": {0: {"lm_eval_aggregation": True, "variants": True,
                                             "extract": True, "metric_args": True,
                                             "slice_field": True,
                                             "generation": set(DECODING_FIELDS)}}})
    digest = hashlib.sha256(dump.encode())
    digest.update(b"data/mc.jsonl")
    digest.update((root / "data/mc.jsonl").read_bytes())
    assert suite.hash == digest.hexdigest()


# -- the metrics against hand-computed values ----------------------------------------------


def _result(name: str, accs: list[float], predictions: list[str]) -> TaskResult:
    samples = [SampleResult(id=f"i{k}", prompt_hash="h", prediction=p, target="t",
                            scores={"acc": a}) for k, (a, p) in enumerate(zip(accs, predictions))]
    value = sum(accs) / len(accs)
    return TaskResult(name=name, kind="choice", samples=samples, metrics={"acc": MetricResult(
        value=value, ci_low=value, ci_high=value, n=len(accs), higher_is_better=True)})


def test_consistency_metrics_match_hand_computed_values() -> None:
    own = _result("mc", [1, 1, 0, 0], ["a", "b", "c", "d"])
    first = _result("mc@x", [1, 0, 0, 1], ["a", "x", "c", "y"])
    second = _result("mc@y", [1, 1, 1, 0], ["a ", "b", "z", "d"])  # "a " is "a" stripped
    out = with_consistency(own, [first, second], RunSettings(), _aggregate)
    m = out.metrics
    assert list(m) == ["acc", "consistency", "mean_variant", "worst_variant", "spread"]
    # item 1 is predicted "a" by all three; items 2-4 each differ once
    assert [s.scores["consistency"] for s in out.samples] == [1.0, 0.0, 0.0, 0.0]
    assert m["consistency"].value == 0.25 and m["consistency"].ci_method == "wilson"
    # per item mean of acc over the templates: 1, 2/3, 1/3, 1/3
    assert [s.scores["mean_variant"] for s in out.samples] == pytest.approx([1, 2 / 3, 1 / 3,
                                                                            1 / 3])
    assert m["mean_variant"].value == pytest.approx(7 / 12) and m["mean_variant"].ci_method == "t"
    # acc per template: 0.5, 0.5, 0.75
    assert m["worst_variant"].value == 0.5 and m["spread"].value == 0.25
    assert m["worst_variant"].ci_method == "bootstrap" and m["spread"].aggregation == "set"
    assert m["spread"].higher_is_better is False and m["worst_variant"].higher_is_better
    assert out.samples[3].stats["spread"] == [0.0, 1.0, 0.0]
    assert m["spread"].ci_low <= 0.25 <= m["spread"].ci_high


def test_reversed_order_is_compared_by_content(tmp_path: Path) -> None:
    """The fake model scores a choice by its text after the context: a reversed order with
    the same prompt chooses the same text at a mirrored index, so every item is consistent
    (a comparison by index would call most of them inconsistent)."""
    from ftguard.api import evaluate

    record = evaluate([_suite(tmp_path, REVERSED)], backend=FakeBackend(3))
    own, rev = record.suites[0].tasks
    assert (own.name, rev.name, rev.variant_of) == ("mc", "mc@reversed", "mc")
    assert rev.settings["choice_order"] == "reversed"
    for a, b in zip(own.samples, rev.samples):
        assert a.id == b.id and a.prediction == b.prediction
        assert b.loglikelihoods == list(reversed(a.loglikelihoods)) and b.gold == 2 - a.gold
    assert sum(a.loglikelihoods.index(max(a.loglikelihoods)) != 1 for a in own.samples) > 0
    assert own.metrics["consistency"].value == 1.0
    assert own.metrics["spread"].value == 0.0
    assert own.metrics["worst_variant"].value == own.metrics["acc"].value


# -- eval, compare, gate, report ----------------------------------------------------------


def test_eval_compare_gate_and_report_with_variants(tmp_path: Path, run_cli) -> None:
    root = _suite(tmp_path)
    base, tuned = tmp_path / "base.json", tmp_path / "tuned.json"
    for spec, out, limit in (("fake:0", base, "8"), ("fake:1", tuned, "8")):
        code, _, err = run_cli("eval", root, "--model", spec, "--tasks", "mc", "--limit", limit,
                               "-o", out)
        assert code == 0, err
    run = json.loads(tuned.read_text())
    tasks = run["suites"][0]["tasks"]
    assert [t["name"] for t in tasks] == ["mc", "mc@reversed", "mc@listed"]  # --tasks mc
    assert all(len(t["samples"]) == 8 for t in tasks)
    code, out, err = run_cli("compare", base, tuned, "--format", "json")
    assert code == 0, err
    rows = {(r["task"], r["metric"]): r for r in json.loads(out)["rows"]}
    assert rows[("mc@listed", "acc")]["headline"] and not rows[("mc@listed", "acc")]["gated"]
    assert [k for k, r in rows.items() if r["gated"]] == [("mc", "acc")]  # the default gate
    assert rows[("mc", "consistency")]["method"].startswith("mcnemar")
    assert rows[("mc", "worst_variant")]["n"] == 8
    code, out, _ = run_cli("compare", base, tuned, "--format", "json", "--fail-on",
                           "tiny/mc@*:headline:not-regressed", "--fail-on",
                           "tiny:consistency:not-regressed", "--fail-on", "tiny/mc:spread:<=-1")
    gated = {(r["task"], r["metric"]) for r in json.loads(out)["rows"] if r["gated"]}
    assert gated == {("mc@reversed", "acc"), ("mc@listed", "acc"), ("mc", "consistency"),
                     ("mc", "spread")}
    assert code == 1  # spread <= -1 cannot hold
    code, _, _ = run_cli("compare", base, tuned, "--format", "json", "-o", tmp_path / "c.json")
    code, _, err = run_cli("report", tmp_path / "c.json", "-o", tmp_path / "c.html")
    html = (tmp_path / "c.html").read_text()
    assert code == 0 and "mc@listed" in html and "worst_variant" in html, err


def test_variants_rows_are_selected_only_by_selectors_naming_them() -> None:
    assert not Rule("not-regressed").selects_task("legal", "target", "doctrine_mc@reversed")
    assert not Rule("not-regressed", "legal").selects_task("legal", "target", "x@reversed")
    assert not Rule("not-regressed", "legal/*").selects_task("legal", "target", "x@reversed")
    assert Rule("not-regressed", "legal/*@*").selects_task("legal", "target", "x@reversed")
    assert Rule("not-regressed", "legal/x@reversed").selects_task("legal", "target",
                                                                  "x@reversed")
    assert Rule("not-regressed", "legal").selects_task("legal", "target", "x")


def test_pytest_checks_follow_the_rules_and_leave_variants_to_rules_naming_them(
        tmp_path: Path) -> None:
    from ftguard.gate import Policy
    from ftguard.gate.grammar import parse_rule
    from ftguard.pytest_nodes import checks_of

    suite = load_suite(_suite(tmp_path))

    def checks(*rules: str) -> list[tuple[str, str]]:
        policy = Policy(tuple(parse_rule(r) for r in rules))
        return [(c.task, c.metric) for c in checks_of(suite, policy)]

    assert checks("*:headline:not-regressed") == [("mc", "acc")]
    assert checks("tiny:consistency:not-regressed", "tiny/mc@*:headline:>=0.1") == [
        ("mc", "consistency"), ("mc@reversed", "acc"), ("mc@listed", "acc")]
