"""suites/standard: lm-eval's tinyBenchmarks and IFEval, checked offline against lm-eval's
task registry, skipped with the reason where their datasets cannot be reached, and never a
pass for the gate when skipped.

These machines have no hub: every dataset of the suite is unreachable here (HF_HUB_OFFLINE=1),
which is the skip path. The run path with data is tested on a local lm-eval task that mimics
a tinyBenchmarks one (its aggregation a function whose module needs a package that is not
installed), run on the tiny Llama of conftest.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, binary_run, write_jsonl

STANDARD = REPO / "suites" / "standard"
TINY = ("tinyMMLU", "tinyArc", "tinyHellaswag", "tinyWinogrande", "tinyGSM8k", "tinyTruthfulQA")
slow = pytest.mark.slow  # lm-eval's built-in index: 12-50 s once per $FTGUARD_HOME


# -- validation against lm-eval's registry ------------------------------------------------------

@slow
def test_standard_suite_validates_offline(run_cli) -> None:
    code, out, err = run_cli("suites", "validate", STANDARD)
    assert code == 0, err
    assert "standard v1 (general): 7 tasks" in out


@slow
def test_metrics_come_from_the_task_yaml() -> None:
    from ftguard.suite import load_suite

    suite = load_suite(STANDARD)
    metrics = {t.name: t.lm_eval_metrics for t in suite.tasks}
    assert metrics == {
        "tinyMMLU": ("acc_norm",), "tinyArc": ("acc_norm",), "tinyHellaswag": ("acc_norm",),
        "tinyWinogrande": ("acc_norm",), "tinyTruthfulQA": ("acc",),
        "tinyGSM8k": ("exact_match,strict-match", "exact_match,flexible-extract"),
        "ifeval": ("prompt_level_strict_acc", "inst_level_strict_acc",
                   "prompt_level_loose_acc", "inst_level_loose_acc")}
    assert {t.lm_eval_yaml.parent.name for t in suite.tasks} == {"tinyBenchmarks", "ifeval"}


@slow
def test_unknown_task_and_metric_are_problems_with_suggestions(tmp_path: Path, run_cli) -> None:
    text = (STANDARD / "suite.yaml").read_text(encoding="utf-8")
    (tmp_path / "suite.yaml").write_text(text.replace("lm_eval_task: tinyArc",
                                                      "lm_eval_task: tinyARC"))
    code, _, err = run_cli("suites", "validate", tmp_path)
    assert code == 2 and "Traceback" not in err
    line = 1 + text.splitlines().index("    lm_eval_task: tinyArc")
    assert f"suite.yaml:{line} [tasks[1].lm_eval_task]" in err
    assert "no task 'tinyARC'" in err and "Did you mean 'tinyArc'?" in err
    (tmp_path / "suite.yaml").write_text(text.replace("ifeval:prompt_level_strict_acc",
                                                      "ifeval:prompt_strict_acc"))
    code, _, err = run_cli("suites", "validate", tmp_path)
    assert code == 2 and "[gate[1]]" in err and "metric 'prompt_strict_acc'" in err
    assert "Did you mean 'prompt_level_strict_acc'" in err
    (tmp_path / "suite.yaml").write_text(text.replace("lm_eval_task: tinyArc",
                                                      "lm_eval_task: tinyBenchmarks"))
    code, _, err = run_cli("suites", "validate", tmp_path)
    assert code == 2 and "'tinyBenchmarks' is an lm-eval group, not a single task" in err


def test_builtin_index_is_read_from_the_cache(tmp_path: Path, monkeypatch) -> None:
    """A second lookup reads $FTGUARD_HOME/lmeval/tasks-<version>.json, not lm-eval's tree."""
    pytest.importorskip("lm_eval")
    from ftguard.lmeval import tasks

    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path))
    root = tasks.tasks_dir()
    index = tmp_path / "lmeval" / f"tasks-{tasks.lmeval_version()}.json"
    index.parent.mkdir(parents=True)
    index.write_text(json.dumps({"format": 1, "tasks_dir": str(root), "entries": {
        "tinyMMLU": ["task", "tinyBenchmarks/tinyMMLU.yaml"],
        "tinyBenchmarks": ["group", "tinyBenchmarks/tinyBenchmarks.yaml"]}}))
    assert tasks.find_task("tinyMMLU", None) == root / "tinyBenchmarks" / "tinyMMLU.yaml"
    from ftguard.errors import DataError

    with pytest.raises(DataError, match="no task 'tinyMMLUU'.*Did you mean 'tinyMMLU'"):
        tasks.find_task("tinyMMLUU", None)


# -- running where the datasets are not reachable ----------------------------------------------

@pytest.fixture(scope="module")
def offline_record(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    """``ftguard eval suites/standard --model fake`` here (no hub): every task is skipped, and
    the model is never needed."""
    import contextlib
    import io

    from ftguard.cli.main import main
    from ftguard.record import read_run

    out = tmp_path_factory.mktemp("standard") / "run.json"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["eval", str(STANDARD), "--model", "fake", "--no-progress",
                     "--out", str(out)])
    assert code == 0, err.getvalue()
    return read_run(out), err.getvalue()


@slow
def test_unreachable_datasets_are_skipped_with_the_reason(offline_record) -> None:
    record, err = offline_record
    (suite,) = record.suites
    assert suite.tasks == []
    skipped = {k.name: k for k in suite.skipped}
    assert list(skipped) == [*TINY, "ifeval"]
    assert skipped["tinyMMLU"].reason.startswith(
        "dataset tinyBenchmarks/tinyMMLU not reachable (HF_HUB_OFFLINE=1")
    assert skipped["tinyArc"].reason.startswith("dataset tinyBenchmarks/tinyAI2_arc not reachable")
    assert skipped["tinyGSM8k"].metrics == ["exact_match,strict-match",
                                            "exact_match,flexible-extract"]
    assert skipped["ifeval"].reason  # a package IFEval needs, or its dataset
    assert "ftguard: warning: standard/tinyMMLU: dataset tinyBenchmarks/tinyMMLU not " \
           "reachable" in err and "Traceback" not in err


@slow
def test_skipped_tasks_are_unchecked_never_passed(offline_record, tmp_path: Path,
                                                  run_cli) -> None:
    from ftguard.record import write_run

    record, _ = offline_record
    write_run(record, base := tmp_path / "base.json")
    write_run(record, tuned := tmp_path / "tuned.json")
    code, out, err = run_cli("compare", base, tuned, "--format", "json")
    assert code == 1, err
    comparison = json.loads(out)
    assert comparison["passed"] is False and comparison["rows"] == []
    (headline, ifeval) = comparison["gate"]
    assert headline["rule"] == "standard:headline:not-regressed"
    assert headline["outcome"] == "unchecked" and len(headline["unchecked"]) == 7
    assert headline["unchecked"][0].startswith(
        "standard/tinyMMLU acc_norm: skipped in both runs: dataset tinyBenchmarks/tinyMMLU not "
        "reachable")
    assert ifeval["rows"] == ["standard/ifeval prompt_level_strict_acc"]
    code, out, _ = run_cli("compare", base, tuned, "--format", "json", "--allow-unchecked", "*")
    assert code == 1 and json.loads(out)["passed"] is False  # nothing was compared at all


def test_a_task_skipped_in_one_run_is_unchecked_beside_the_compared_ones() -> None:
    from ftguard.compare import compare
    from ftguard.gate import resolve_policy
    from ftguard.record import SkippedTask

    base = binary_run("base", {("std", "ran"): [1] * 30 + [0] * 10,
                               ("std", "hub"): [1] * 20 + [0] * 20})
    tuned = binary_run("tuned", {("std", "ran"): [1] * 30 + [0] * 10})
    tuned.suites[0].skipped = [SkippedTask(name="hub", kind="lm_eval", metrics=["acc"],
                                           reason="dataset org/hub not reachable (offline)")]
    result = compare(base, tuned)
    assert [(r.task, r.verdict) for r in result.rows] == [("ran", "unchanged")]
    (rule,) = result.gate
    assert rule.outcome == "unchecked" and rule.fails and not result.passed
    assert rule.rows == ["std/ran acc", "std/hub acc"]
    assert rule.unchecked == [("std/hub acc: skipped in the tuned run: dataset org/hub not "
                               "reachable (offline); not compared")]
    allowed = compare(base, tuned, resolve_policy(allow_unchecked=["*"]))
    assert allowed.passed and allowed.gate[0].outcome == "unchecked"
    assert "std/hub" not in " ".join(allowed.notes)  # not an --allow-mismatch difference


# -- the run path with local data ---------------------------------------------------------------

TASK_YAML = """\
task: tinymock
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{ question }}}}\\nAnswer:"
doc_to_choice: choices
doc_to_target: answer
metric_list:
  - metric: acc_norm
    aggregation: !function agg.irt_estimate
    higher_is_better: true
"""
AGG = "import tinyBenchmarks_not_installed  # noqa\n\ndef irt_estimate(items):\n    return 0.5\n"
ROWS = [{"question": f"Which number is {i}?", "choices": [str(i), str(i + 1), str(i + 2)],
         "answer": i % 3} for i in range(12)]
HUB_YAML = TASK_YAML.replace("task: tinymock", "task: hubmock").replace(
    "dataset_path: json", "dataset_path: ftguard-tests/no-such-dataset")


def _mock_suite(root: Path, aggregation: str) -> Path:
    tasks = root / "tasks"
    data = write_jsonl(tasks / "mock.jsonl", ROWS)
    (tasks / "mock.yaml").write_text(TASK_YAML.format(data=json.dumps(str(data))))
    (tasks / "hub.yaml").write_text(HUB_YAML.format(data=json.dumps(str(data))))
    (tasks / "agg.py").write_text(AGG)
    (root / "suite.yaml").write_text(
        "name: mock\nversion: 1\nrole: general\ntasks:\n"
        f"  - {{name: mock, kind: lm_eval, lm_eval_task: tinymock, lm_eval_include: tasks"
        f"{aggregation}}}\n"
        "  - {name: hub, kind: lm_eval, lm_eval_task: hubmock, lm_eval_include: tasks, "
        "lm_eval_aggregation: mean}\n")
    return root


@slow
def test_mean_aggregation_runs_a_tiny_task_on_local_data(tmp_path: Path, tiny_model: Path
                                                         ) -> None:
    import ftguard

    record = ftguard.evaluate([_mock_suite(tmp_path / "s", ", lm_eval_aggregation: mean")],
                              load=ftguard.LoadOptions(model=str(tiny_model), device="cpu",
                                                       dtype="float32", batch_size=4),
                              cache=False)
    (suite,) = record.suites
    (task,) = suite.tasks
    scores = [s.scores["acc_norm"] for s in task.samples]
    assert len(scores) == 12 and set(scores) <= {0.0, 1.0}
    assert task.metrics["acc_norm"].value == pytest.approx(sum(scores) / 12)
    assert task.metrics["acc_norm"].aggregation == "mean"  # per-item: paired tests work
    assert task.settings["aggregation"] == "mean"
    (hub,) = suite.skipped
    assert hub.name == "hub" and hub.metrics == ["acc_norm"]
    assert hub.reason.startswith("dataset ftguard-tests/no-such-dataset not reachable (")


def test_own_aggregation_needing_a_missing_package_is_skipped(tmp_path: Path, run_cli) -> None:
    pytest.importorskip("lm_eval")
    root = _mock_suite(tmp_path / "s", "")
    code, _, err = run_cli("eval", root, "--model", "fake", "--no-progress",
                           "--out", tmp_path / "run.json")
    assert code == 0, err
    (suite,) = json.loads((tmp_path / "run.json").read_text())["suites"]
    assert [k["name"] for k in suite["skipped"]] == ["mock", "hub"]
    assert suite["skipped"][0]["reason"].startswith(
        "lm-eval task 'tinymock' needs the Python package 'tinyBenchmarks_not_installed', "
        "which is not installed")
    assert "mock/mock: lm-eval task 'tinymock' needs the Python package" in err


# -- the real datasets, where the hub is reachable -----------------------------------------------

def _hub_unreachable() -> str | None:
    """Why the standard suite's datasets cannot be fetched here (None when they can)."""
    import os
    import socket

    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set: the tinyBenchmarks datasets cannot be fetched"
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError as exc:
        return f"huggingface.co is not reachable ({exc}): the datasets cannot be fetched"
    return None


@slow
def test_standard_runs_where_the_hub_is_reachable(run_cli, tiny_model: Path,
                                                  tmp_path: Path) -> None:
    if why := _hub_unreachable():
        pytest.skip(why)
    out = tmp_path / "run.json"
    code, _, err = run_cli("eval", STANDARD, "--tasks", "tinyArc", "--model", tiny_model,
                           "--limit", "5", "--no-progress", "--out", out)
    assert code == 0, err
    from ftguard.record import read_run

    (suite,) = read_run(out).suites
    (task,) = suite.tasks
    assert suite.skipped == [] and len(task.samples) == 5 and "acc_norm" in task.metrics
