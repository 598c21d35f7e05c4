"""Nothing passes unchecked: invalid records are refused when read, rows without per-item
scores make their rule ``unchecked`` (a failure unless allowed), a comparison that gates
nothing is exit 2, and ``--allow-mismatch`` with no shared items in a gated task is exit 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import binary_run, flipped_pair
from ftguard.errors import RecordError
from ftguard.record import MetricResult, read_run, write_run


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    base, tuned = flipped_pair(60, 2, 2, seed=4)
    write_run(binary_run("a", {("general", "reviews"): base}), tmp_path / "a.json")
    write_run(binary_run("b", {("general", "reviews"): tuned}), tmp_path / "b.json")
    return tmp_path / "a.json", tmp_path / "b.json"


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(("change", "words"), [
    (lambda d: d["suites"][0]["tasks"][0]["samples"][3].pop("scores"),
     ["general/reviews", "'reviews-3' has no 'scores'"]),
    (lambda d: d["suites"][0]["tasks"][0]["samples"][4].update(id="reviews-3"),
     ["general/reviews", "'reviews-3' appears twice"]),
    (lambda d: d["suites"].append(d["suites"][0]), ["suite 'general' appears twice"]),
    (lambda d: d["suites"][0]["tasks"][0]["samples"][5]["scores"].update(acc=math.nan),
     ["general/reviews", "'reviews-5'", "non-finite", "acc"]),
    (lambda d: d["suites"][0]["tasks"][0]["samples"][5]["scores"].update(acc=math.inf),
     ["'reviews-5'", "non-finite"]),
])
def test_invalid_records_are_refused_naming_file_task_and_item(tmp_path: Path, run_cli,
                                                               change, words) -> None:
    a, b = _pair(tmp_path)
    _edit(b, change)
    with pytest.raises(RecordError):
        read_run(b)
    code, out, err = run_cli("compare", a, b)
    assert code == 2 and out == "" and "Traceback" not in err
    assert str(b) in err
    for word in words:
        assert word in err, err


def test_eval_never_writes_an_invalid_record(tmp_path: Path) -> None:
    base, _ = flipped_pair(10, 0, 0)
    run = binary_run("a", {("general", "reviews"): base})
    run.suites[0].tasks[0].samples[1].scores["acc"] = math.nan
    with pytest.raises(RecordError, match="non-finite"):
        write_run(run, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def _corpus_only(run):
    """A task whose headline (a corpus BLEU imported from lm-eval) has no per-item data."""
    task = run.suites[0].tasks[0]
    task.metrics = {"bleu": MetricResult(value=20.0, ci_low=18.0, ci_high=22.0, n=60,
                                         higher_is_better=True, aggregation="corpus"),
                    **task.metrics}
    return run


def test_rows_without_per_item_scores_make_their_rule_unchecked(tmp_path: Path,
                                                                run_cli) -> None:
    base, tuned = flipped_pair(60, 2, 2, seed=4)
    write_run(_corpus_only(binary_run("a", {("general", "reviews"): base})), tmp_path / "a.json")
    write_run(_corpus_only(binary_run("b", {("general", "reviews"): tuned})), tmp_path / "b.json")
    code, out, _ = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json",
                           "--out", tmp_path / "cmp.json")
    assert code == 1 and out.startswith("FAIL")
    assert "UNCHECKED *:headline:not-regressed" in out and "not compared item by item" in out
    row = json.loads((tmp_path / "cmp.json").read_text())["rows"][0]
    assert (row["metric"], row["comparable"], row["verdict"], row["p_value"]) == (
        "bleu", False, "not-compared", None)
    code, out, _ = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json",
                           "--allow-unchecked", "*:headline:not-regressed")
    assert code == 0 and out.startswith("PASS (1 rule(s) not fully checked)")
    assert "allowed by --allow-unchecked" in out
    code, _, err = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json",
                           "--allow-unchecked", "general:acc:5%")
    assert code == 2 and "no such rule in the gate" in err


def test_a_comparison_that_gates_nothing_is_exit_2(tmp_path: Path, run_cli) -> None:
    a, b = _pair(tmp_path)

    def add_f1(data):  # a metric only the tuned run has: the rule resolves, no row is compared
        task = data["suites"][0]["tasks"][0]
        task["metrics"]["f1"] = dict(task["metrics"]["acc"])
        for sample in task["samples"]:
            sample["scores"]["f1"] = sample["scores"]["acc"]
    _edit(b, add_f1)
    code, out, err = run_cli("compare", a, b, "--fail-on", "general:f1:5%")
    assert code == 2 and out == "" and "nothing was gated" in err and "Traceback" not in err


def test_allow_mismatch_without_shared_items_in_a_gated_task(tmp_path: Path, run_cli) -> None:
    a, b = _pair(tmp_path)

    def rename(data):
        for sample in data["suites"][0]["tasks"][0]["samples"]:
            sample["id"] = "other-" + sample["id"]
    _edit(b, rename)
    code, _, err = run_cli("compare", a, b)
    assert code == 2 and "--allow-mismatch" in err
    code, out, err = run_cli("compare", a, b, "--allow-mismatch")
    assert code == 2 and out == ""
    assert "task general/reviews has no item in both runs" in err and "Traceback" not in err


@pytest.mark.parametrize("metric", ["acc", "inst_level_strict_acc", "f1"])
def test_a_task_of_one_item_is_untestable_not_a_crash(metric: str) -> None:
    """A checkpoint evaluation sampling one item of a task (the demo's instructions) compared
    it with a paired test that needs two items and stopped the fine-tune with a ValueError.
    One item is compared, reported untestable and underpowered under a rule, never passed."""
    from ftguard.compare import compare

    runs = [binary_run(name, {("general", "instructions"): [c]})
            for name, c in (("a", True), ("b", False))]
    for run, (followed, value) in zip(runs, ((3.0, 0.75), (1.0, 0.25))):
        task = run.suites[0].tasks[0]
        sample = task.samples[0]
        sample.scores = {metric: value} if metric != "inst_level_strict_acc" else {}
        sample.stats = {metric: [followed, 4.0]} if metric == "inst_level_strict_acc" else {}
        task.metrics = {metric: MetricResult(value=value, ci_low=0, ci_high=1, n=1,
                                             higher_is_better=True)}
    comparison = compare(*runs)
    row = comparison.rows[0]
    assert (row.n, row.delta, row.p_value, row.testable) == (1, -0.5, 1.0, False)
    assert (row.ci_low, row.ci_high) == (None, None)  # unbounded
    assert row.verdict != "regressed" and comparison.underpowered
