"""Slices (``slice_field``) through the whole flow: suite loading, eval, the record, compare,
the gate (``suite/task[FIELD=VALUE]``), the HTML report, judge (checkpoints, merge sweep).

The planted regression: a task of 84 items in four topics whose headline rises (54 -> 56
right, exact McNemar p = 0.86 on 34 discordant items) while one topic of 20 items loses 16
(p = 2 * 0.5**16): the default gate (headlines) passes, a rule on that slice fails.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import binomtest

from ftguard.compare import compare
from ftguard.errors import UsageError
from ftguard.gate import parse_rule, resolve_policy
from ftguard.metrics import aggregate
from ftguard.record import (
    MetricResult,
    ModelInfo,
    RunRecord,
    SampleResult,
    SuiteResult,
    TaskResult,
    read_run,
    write_run,
)

# topic -> (items, correct in base, correct in tuned); the first k items of a topic are right
PLAN = {"a": (20, 20, 4), "b": (30, 15, 25), "c": (30, 17, 25), "d": (4, 2, 2)}


def _metric(scores: list[float]) -> MetricResult:
    v = aggregate("acc", scores, None)
    return MetricResult(value=v.value, ci_low=v.ci_low, ci_high=v.ci_high, n=v.n,
                        higher_is_better=True, stderr=v.stderr, ci_method=v.method)


def _record(which: int, *, sliced: bool = True, spec: str = "m") -> RunRecord:
    """Hand-built run (which = 1 base, 2 tuned) of suite ``smoke`` task ``doctrine``."""
    samples = []
    for topic, (n, *correct) in PLAN.items():
        for k in range(n):
            right = float(k < correct[which - 1])
            samples.append(SampleResult(id=f"{topic}{k}", prompt_hash=f"h-{topic}{k}",
                                        prediction="x" if right else "y", target="x",
                                        scores={"acc": right},
                                        slices=[f"topic={topic}"] if sliced else []))
    slices = {f"topic={t}": {"acc": _metric([s.scores["acc"] for s in samples
                                             if s.id.startswith(t)])} for t in PLAN}
    task = TaskResult(name="doctrine", kind="choice", samples=samples,
                      metrics={"acc": _metric([s.scores["acc"] for s in samples])},
                      slices=slices if sliced else None)
    return RunRecord(model=ModelInfo(spec=spec, fingerprint=f"fp-{spec}", dtype="none",
                                     backend="fake"),
                     suites=[SuiteResult(name="smoke", version="1", hash="h", role="general",
                                         tasks=[task])])


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    base, tuned = tmp_path / "base.json", tmp_path / "tuned.json"
    write_run(_record(1, spec="base"), base)
    write_run(_record(2, spec="tuned"), tuned)
    return base, tuned


def _rows(comparison: Any) -> dict[tuple[str | None, str], Any]:
    return {(r.slice, r.metric): r for r in comparison.rows}


def _holm(ps: list[float]) -> list[float]:
    """Holm's step-down adjustment, written out."""
    order = sorted(range(len(ps)), key=ps.__getitem__)
    out, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        out[i] = running
    return out


def test_the_aggregate_hides_a_slice_regression_the_slice_rows_show() -> None:
    c = compare(_record(1), _record(2))
    rows = _rows(c)
    head = rows[None, "acc"]
    assert (head.base, head.tuned, head.n) == (54 / 84, 56 / 84, 84)
    assert head.p_value == pytest.approx(binomtest(16, 34).pvalue)  # 16 c->w, 18 w->c
    assert head.verdict == "unchanged" and head.gated and c.passed
    # McNemar per slice: the discordant items are the flips (a: 16 c->w; b: 10 w->c; c: 8)
    ps = [binomtest(0, 16).pvalue, binomtest(0, 10).pvalue, binomtest(0, 8).pvalue, 1.0]
    for topic, p, adj in zip("abcd", ps, _holm(ps)):
        row = rows[f"topic={topic}", "acc"]
        assert row.p_value == pytest.approx(p) and row.p_adjusted == pytest.approx(adj)
        assert not row.gated and row.method == "mcnemar-exact"
    assert rows["topic=a", "acc"].verdict == "regressed"
    assert (rows["topic=a", "acc"].base, rows["topic=a", "acc"].tuned) == (1.0, 0.2)
    assert rows["topic=b", "acc"].verdict == "improved"
    assert not rows["topic=d", "acc"].testable  # 4 items: no outcome is significant
    # the slice rows enter neither the headline family nor the aggregates
    assert head.p_adjusted == head.p_value
    assert c.alignment_tax is not None and c.alignment_tax.tasks == ["smoke/doctrine"]
    assert c.alignment_tax.value == pytest.approx((56 - 54) / 54)
    assert any("smoke/doctrine[topic=a] acc regressed significantly" in line
               for line in c.not_gated)


def test_a_slice_rule_fails_where_the_default_gate_passes(runs, run_cli) -> None:
    base, tuned = runs
    code, out, err = run_cli("compare", base, tuned)
    assert code == 0, err
    line = next(x for x in out.splitlines() if "doctrine[topic=a]" in x)  # the slice table
    assert line.split() == ["smoke", "doctrine[topic=a]", "acc", "1", "0.2", "-0.8",
                            *line.split()[6:8], line.split()[8], "20", "regressed"]
    code, out, err = run_cli("compare", base, tuned, "--fail-on",
                             "smoke/doctrine[topic=a]:acc:not-regressed")
    assert code == 1, err
    assert "FAIL smoke/doctrine[topic=a]:acc:not-regressed [--fail-on]: 1 row(s)" in out
    assert "smoke/doctrine[topic=a] acc regressed significantly: 1 -> 0.2" in out
    # globs on the value; the rule's rows are every slice it matches
    code, out, _ = run_cli("compare", base, tuned, "--fail-on", "smoke/*[topic=*]:acc:5%",
                           "--format", "json")
    gate = json.loads(out)["gate"][0]
    assert code == 1 and len(gate["rows"]) == 4 and gate["outcome"] == "failed"
    assert gate["failures"] == ["smoke/doctrine[topic=a] acc dropped by 0.8 (more than 0.05 "
                                "allowed): 1 -> 0.2 (delta -0.8, 95% CI "
                                + gate["failures"][0].split("95% CI ")[1]]


def test_an_unknown_slice_is_a_usage_error_naming_the_slices(runs, run_cli) -> None:
    base, tuned = runs
    code, _, err = run_cli("compare", base, tuned, "--fail-on",
                           "smoke/doctrine[topic=e]:acc:not-regressed")
    assert code == 2 and "Traceback" not in err
    assert "slice [topic=e] matches no slice of the selected task(s) (their slices: " \
           "topic=a, topic=b, topic=c, topic=d)" in err
    code, _, err = run_cli("compare", base, tuned, "--fail-on", "smoke/doctrine[topic]:acc:5%")
    assert code == 2 and "SELECTOR[FIELD=VALUE]" in err


def test_a_tiny_slice_is_underpowered_not_passed(runs, run_cli) -> None:
    base, tuned = runs
    rule = "smoke/doctrine[topic=d]:acc:not-regressed"
    code, out, _ = run_cli("compare", base, tuned, "--fail-on", rule, "--format", "json")
    gate = json.loads(out)["gate"][0]
    assert code == 0 and gate["outcome"] == "underpowered"
    assert gate["underpowered"] == [("smoke/doctrine[topic=d] acc: no outcome on n=4 items "
                                    "could be significant at alpha; it needs at least 6 items")]
    code, _, _ = run_cli("compare", base, tuned, "--fail-on", rule, "--strict-power")
    assert code == 1


def test_a_slice_in_one_run_only_is_reported_and_unchecked(tmp_path: Path, run_cli) -> None:
    old = tmp_path / "old.json"  # a record written before ftguard sliced tasks
    data = _record(1, sliced=True).model_dump(mode="json")
    for task in data["suites"][0]["tasks"]:
        del task["slices"]
        for sample in task["samples"]:
            del sample["slices"]
    old.write_text(json.dumps(data))
    assert read_run(old).suites[0].tasks[0].slices is None
    write_run(_record(2), tuned := tmp_path / "tuned.json")
    code, out, _ = run_cli("compare", old, tuned)
    assert code == 0
    assert ("note: smoke/doctrine: 4 slice(s) in one run only, not compared (topic=a, topic=b, "
            "topic=c, topic=d)") in out
    code, out, _ = run_cli("compare", old, tuned, "--fail-on",
                           "smoke/doctrine[topic=a]:acc:not-regressed")
    assert code == 1
    assert ("unchecked: smoke/doctrine[topic=a] acc: slice only in the tuned run (the other run "
            "recorded no slices") in out


def test_policy_mappings_and_suite_gates_select_slices(tmp_path: Path) -> None:
    from ftguard.gate import SuiteGate, load_policy

    path = tmp_path / "gate.yaml"
    path.write_text("rules:\n  - {select: smoke/doctrine, slice: topic=a, metric: acc, "
                    "rule: not-regressed}\n  - 'smoke/doctrine[topic=b]:acc:>=0.9'\n")
    rules = load_policy(path).rules
    assert [r.text for r in rules] == ["smoke/doctrine[topic=a]:acc:not-regressed",
                                       "smoke/doctrine[topic=b]:acc:>=0.9"]
    c = compare(_record(1), _record(2), resolve_policy(policy=load_policy(path)))
    assert [o.outcome for o in c.gate] == ["failed", "failed"] and not c.passed
    own = SuiteGate("smoke", ("doctrine[topic=a]:acc:not-regressed",
                              "[topic=c]:headline:improved")).rules()
    assert [r.text for r in own] == ["smoke/doctrine[topic=a]:acc:not-regressed",
                                     "smoke[topic=c]:headline:improved"]
    c = compare(_record(1), _record(2), resolve_policy(fail_on=own))
    assert [o.outcome for o in c.gate] == ["failed", "passed"]
    with pytest.raises(UsageError, match="SELECTOR"):
        parse_rule("smoke[topic=a][x=y]:acc:5%")


def test_judge_sees_the_slice_rule_and_the_same_alignment_tax() -> None:
    """Checkpoint choice and the merge sweep judge through :func:`ftguard.judge.judge`."""
    from ftguard.judge import judge

    plain = judge(_record(1), _record(2), resamples=200, seed=1)
    sliced = judge(_record(1), _record(2), resolve_policy(fail_on=[parse_rule(
        "smoke/doctrine[topic=a]:acc:not-regressed")]), resamples=200, seed=1)
    assert plain.passed and not sliced.passed
    assert "smoke/doctrine[topic=a] acc regressed significantly" in sliced.failures[0]
    assert plain.alignment_tax == sliced.alignment_tax == pytest.approx(2 / 54)


def test_the_report_has_an_escaped_table_per_sliced_task() -> None:
    from ftguard.report.render import render_report

    base, tuned = _record(1), _record(2)
    for run in (base, tuned):
        task = run.suites[0].tasks[0]
        task.slices = {k.replace("topic=b", "topic=<b>"): v for k, v in task.slices.items()}
        for sample in task.samples:
            sample.slices = [s.replace("topic=b", "topic=<b>") for s in sample.slices]
    html = render_report(compare(base, tuned))
    assert '<h2 id="slices">Slices</h2>' in html and "<h3>smoke/doctrine</h3>" in html
    assert "<td>topic=&lt;b&gt;</td>" in html and "topic=<b>" not in html
    run_html = render_report(base)
    assert "<td>topic=&lt;b&gt;</td>" in run_html


# -- suites: the slice field, and eval through the fake model ------------------------------

SLICED = """\
name: sliced
version: "1"
role: general
tasks:
  - name: mc
    kind: choice
    data: data/mc.jsonl
    slice_field: [topic, tags]
    prompt: "Question: {{ question }}\\nAnswer:"
    choices_field: choices
    target_index: "{{ answer }}"
    metrics: [acc]
"""


def _items(n: int = 24, **extra: Any) -> list[dict[str, Any]]:
    rows = [{"id": f"q{i}", "question": f"Which is number {i}?", "topic": "ab"[i % 2],
             "tags": ["x", "y"] if i % 3 == 0 else [], "choices": [f"w{i}", f"v{i}", f"u{i}"],
             "answer": i % 3} for i in range(n)]
    rows[0].update(extra)
    return rows


def test_eval_records_each_slice_with_the_tasks_aggregate(make_suite, run_cli,
                                                           tmp_path: Path) -> None:
    root = make_suite(SLICED, {"data/mc.jsonl": _items()})
    out_file = tmp_path / "run.json"
    code, out, err = run_cli("eval", root, "--model", "fake:3", "--out", out_file,
                             "--no-progress")
    assert code == 0, err
    task = read_run(out_file).suites[0].tasks[0]
    assert list(task.slices or {}) == ["tags=x", "tags=y", "topic=a", "topic=b"]
    for name, metrics in (task.slices or {}).items():
        members = [s.scores["acc"] for s in task.samples if name in s.slices]
        assert metrics["acc"].n == len(members) == {"tags=x": 8, "tags=y": 8}.get(name, 12)
        assert metrics["acc"].value == pytest.approx(sum(members) / len(members))
        assert (metrics["acc"].ci_low, metrics["acc"].ci_high) == (
            aggregate("acc", members, None).ci_low, aggregate("acc", members, None).ci_high)
    assert task.samples[0].slices == ["topic=a", "tags=x", "tags=y"]
    assert f"mc[topic=a]  acc ↑  {task.slices['topic=a']['acc'].value:.4f}".replace(
        "  ", " ") in " ".join(out.replace("│", " ").split())
    code, out, _ = run_cli("eval", root, "--model", "fake:3", "--format", "json",
                           "--no-progress")
    rows = json.loads(out)["results"]
    assert [(r["slice"], r["n"]) for r in rows] == [(None, 24), ("tags=x", 8), ("tags=y", 8),
                                                    ("topic=a", 12), ("topic=b", 12)]


@pytest.mark.parametrize(("extra", "message"), [
    ({"topic": {"k": 1}}, ("slice field 'topic' must be a string or a list of strings (tags), "
                          "not dict")),
    ({"tags": ["ok", "a:b"]}, ("slice value 'a:b' of field 'tags' must be non-empty, without "
                              "':'")),
])
def test_a_bad_slice_value_is_refused_at_its_line(make_suite, run_cli, extra, message) -> None:
    root = make_suite(SLICED, {"data/mc.jsonl": _items(**extra)})
    code, _, err = run_cli("suites", "validate", root)
    assert code == 2 and message in err and "mc.jsonl:1" in err and "Traceback" not in err


def test_a_slice_field_no_item_has_is_refused(make_suite, run_cli) -> None:
    root = make_suite(SLICED.replace("[topic, tags]", "[topic, tag]"),
                      {"data/mc.jsonl": _items()})
    code, _, err = run_cli("suites", "validate", root)
    assert code == 2 and "suite.yaml:8" in err
    assert "slice field 'tag' is in none of the 24 items of data/mc.jsonl" in err
    root = make_suite(SLICED.replace("[topic, tags]", "'to pic'"), {"data/mc.jsonl": _items()},
                      name="bad-name")
    code, _, err = run_cli("suites", "validate", root)
    assert code == 2 and "slice field 'to pic' may only use letters" in err


def test_a_suite_gate_naming_an_unknown_slice_is_refused_at_its_line(make_suite,
                                                                     run_cli) -> None:
    gate = 'gate:\n  - "mc[topic=a]:acc:not-regressed"\n  - "mc[topic=z]:acc:not-regressed"\n'
    root = make_suite(SLICED + gate, {"data/mc.jsonl": _items()})
    code, _, err = run_cli("suites", "validate", root)
    assert code == 2 and "suite.yaml:15" in err and "slice [topic=z] matches no slice" in err
    assert err.count("matches no slice") == 1  # the rule on topic=a is fine


# -- the pytest plugin: one item per gated check, a slice rule gives its own item ----------

pytest_plugins = ["pytester"]

PLUGGED = """\
name: plug
version: "1"
role: general
tasks:
  - name: mc
    kind: choice
    data: data/mc.jsonl
    slice_field: topic
    prompt: "Question: {{ question }}\\nAnswer:"
    choices_field: choices
    target_index: "{{ answer }}"
    metrics: [acc]
gate:
  - "headline:not-regressed"
  - "mc[topic=a]:acc:not-regressed"
"""


def test_the_pytest_plugin_fails_the_slice_item_and_passes_the_headline(
        pytester: pytest.Pytester) -> None:
    """Baseline: ``fake:0``'s own run with every topic-a item right and every other item
    wrong; the current run (``fake:0`` again) loses most of topic a and wins back about a
    third of the rest, so the headline does not regress and topic a does."""
    import importlib.metadata

    from conftest import write_jsonl
    from ftguard.api import evaluate
    from ftguard.baseline import accept
    from ftguard.models.load import LoadOptions

    root = pytester.path / "suites" / "plug"
    write_jsonl(root / "data" / "mc.jsonl", [
        {"id": f"q{i}", "question": f"Which option is number {i}?", "topic": "abc"[i % 5 % 3],
         "choices": [f"alpha {i}", f"beta {i}", f"gamma {i}"], "answer": i % 3}
        for i in range(60)])
    (root / "suite.yaml").write_text(PLUGGED, encoding="utf-8")
    record = evaluate([root], load=LoadOptions(model="fake:0"))
    task = record.suites[0].tasks[0]
    lost = sum(s.scores["acc"] == 0 for s in task.samples if "topic=a" in s.slices)
    won = sum(s.scores["acc"] == 1 for s in task.samples if "topic=a" not in s.slices)
    assert (lost, won) == (19, 12)  # of 24 topic-a items and 36 others: the headline p is 0.28
    for sample in task.samples:
        sample.scores["acc"] = float("topic=a" in sample.slices)
    accept(record, pytester.path / "baselines", name="planted", force=True)

    installed = any(ep.value == "ftguard.pytest_plugin"
                    for ep in importlib.metadata.entry_points(group="pytest11"))
    result = pytester.runpytest(*(() if installed else ("-p", "ftguard.pytest_plugin")),
                                "--ftguard", "suites", "--ftguard-model", "fake:0", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*suites/plug/suite.yaml::mc::acc[[]not-regressed[]] PASSED*",
        "*suites/plug/suite.yaml::mc::acc[[]topic=a[]][[]not-regressed[]] FAILED*"])
    result.stdout.fnmatch_lines(["plug/mc[[]topic=a[]] acc regressed significantly: 1 -> 0.2083*"])


@pytest.mark.parametrize(("task", "sizes"), [
    ("legal/doctrine_mc", {"contracts": 24, "torts": 20, "civil_procedure": 21, "evidence": 15,
                           "public_law": 29, "property_business": 21}),
    ("general/world_knowledge", {"geography": 47, "science": 45, "biology": 35, "history": 29,
                                 "culture": 26, "everyday": 38}),
])
def test_the_shipped_slices_every_item_in_one_topic_of_at_least_15(run_cli, task: str,
                                                                    sizes: dict[str, int]) -> None:
    code, out, err = run_cli("suites", "show", task, "--format", "json")
    assert code == 0, err
    (view,) = [t for t in json.loads(out)["tasks"] if t["task"] == task]
    assert sorted(view["slices"].items()) == sorted((f"topic={k}", n) for k, n in sizes.items())
    assert sum(sizes.values()) == view["items"] and min(sizes.values()) >= 15
