"""The shipped ``standard`` suite: lm-eval's tinyBenchmarks and IFEval, checked offline against
lm-eval's task registry, run where their datasets can be fetched."""

from __future__ import annotations

import os

import pytest

from conftest import REPO
from ftguard.lmeval.registry import builtin_task_problem, builtin_tasks
from ftguard.suite import load_suite, validate_paths

STANDARD = REPO / "suites" / "standard"
WANTED = {"tinyMMLU", "tinyArc", "tinyHellaswag", "tinyWinogrande", "tinyGSM8k",
          "tinyTruthfulQA_mc1", "ifeval"}


def test_standard_names_the_seven_tasks_and_validates_offline() -> None:
    suite = load_suite(STANDARD)
    assert suite.spec.role == "general"
    assert {t.spec.lm_eval_task for t in suite.tasks} == WANTED
    assert all(t.spec.kind == "lm_eval" and t.lm_eval_include is None for t in suite.tasks)


def test_a_misspelled_builtin_task_is_a_located_problem(make_suite) -> None:
    yaml = (STANDARD / "suite.yaml").read_text().replace("lm_eval_task: tinyArc\n",
                                                         "lm_eval_task: tinyArk\n")
    _, problems = validate_paths([make_suite(yaml)])
    (problem,) = problems
    assert problem.key == "tasks[1].lm_eval_task" and "Did you mean 'tinyArc'" in str(problem)
    assert builtin_task_problem("tinyArc") is None


@pytest.mark.slow
def test_the_task_index_agrees_with_lm_evals_registry() -> None:
    from lm_eval.tasks import TaskManager

    manager = TaskManager()  # lm-eval's full index of its built-in tasks (~12 s)
    index = builtin_tasks()
    assert index is not None and len(index) > 5000
    assert WANTED <= set(manager.all_subtasks) and WANTED <= set(index)
    sample = sorted(index)[::97]  # the scan finds only real tasks (groups and tags aside)
    assert set(sample) <= set(manager.all_tasks)


def _cannot_run() -> str | None:
    """Why the standard suite cannot run here (None when it can)."""
    import importlib.util

    if importlib.util.find_spec("tinyBenchmarks") is None:
        return ("the tinyBenchmarks package, which lm-eval's tiny tasks aggregate with, is not "
                "installed (not on PyPI): the tiny tasks do not load")
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set: the tinyBenchmarks and IFEval datasets cannot be fetched"
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError as exc:
        return f"huggingface.co is not reachable ({exc}): the datasets cannot be fetched"
    return None


@pytest.mark.slow
def test_standard_runs_where_the_hub_is_reachable(run_cli, tiny_model, tmp_path) -> None:
    why = _cannot_run()
    if why:
        pytest.skip(why)
    out = tmp_path / "run.json"
    code, _, err = run_cli("eval", STANDARD, "--tasks", "tinyArc", "--model", tiny_model,
                           "--limit", "5", "--no-progress", "--out", out)
    assert code == 0, err
    from ftguard.record import read_run

    (suite,) = read_run(out).suites
    (task,) = suite.tasks
    assert len(task.samples) == 5 and "acc_norm" in task.metrics
