"""``--tasks``: only the named tasks are evaluated, recorded as a partial run, and compared
only with runs of the same tasks (the pytest side is in test_pytest_plugin.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import REPO, suite_yaml, write_suite
from ftguard.record import RunConfig, read_run

LEGAL, GENERAL = REPO / "suites" / "legal", REPO / "suites" / "general"
Cli = Callable[..., tuple[int, str, str]]
DOCTRINE_VARIANTS = [f"doctrine_mc@{v}" for v in ("reversed", "rotated", "reworded")]


def tasks_of(path: Path) -> list[tuple[str, list[str]]]:
    return [(s.name, [t.name for t in s.tasks]) for s in read_run(path).suites]


def test_only_the_named_tasks_are_evaluated_and_recorded(run_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    code, stdout, err = run_cli("eval", LEGAL, GENERAL, "--model", "fake", "--limit", "4",
                                "--tasks", "clause_type,general/commonsense",
                                "--tasks", "doctrine_mc", "--no-progress", "-o", out)
    assert code == 0, err
    # a selected task brings its variants (TASK@VARIANT: the same items asked other ways)
    assert tasks_of(out) == [("legal", ["clause_type", "doctrine_mc", *DOCTRINE_VARIANTS]),
                             ("general", ["commonsense"])]
    record = read_run(out)
    assert record.config.tasks == ["legal/clause_type", "legal/doctrine_mc",
                                   "general/commonsense"]
    assert all(len(t.samples) == 4 for s in record.suites for t in s.tasks)
    assert "legal_qa" not in stdout and "world_knowledge" not in stdout
    assert record.config.partial_reason() == (
        "at most 4 items per task (--limit 4); only the task(s) legal/clause_type, "
        "legal/doctrine_mc, general/commonsense (--tasks)")


def test_a_suite_without_a_selected_task_is_dropped_and_whole_suites_are_no_partial_run(
        run_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    code, _, err = run_cli("eval", LEGAL, GENERAL, "--model", "fake", "--limit", "2",
                           "--tasks", "legal/*", "--no-progress", "-o", out)
    assert code == 0, err
    assert tasks_of(out) == [("legal", ["clause_type", "legal_qa", "plain_language",
                                        "doctrine_mc", *DOCTRINE_VARIANTS, "legal_corpus"])]
    record = read_run(out)
    assert "tasks" not in json.loads(out.read_text())["config"]
    assert record.config.partial_reason() == "at most 2 items per task (--limit 2)"


def test_a_bare_task_name_selects_it_in_every_suite(run_cli: Cli, tmp_path: Path) -> None:
    mc_and_qa = suite_yaml("one") + """\
  - name: qa
    kind: generate
    data: data/qa.jsonl
    prompt: "Q: {{ question }}"
    target_field: answers
"""
    one = write_suite(tmp_path / "one", mc_and_qa)
    two = write_suite(tmp_path / "two", suite_yaml("two"))
    out = tmp_path / "run.json"
    code, _, err = run_cli("eval", one, two, "--model", "fake", "--tasks", "mc",
                           "--no-progress", "-o", out)
    assert code == 0, err
    assert tasks_of(out) == [("one", ["mc"]), ("two", ["mc"])]
    assert read_run(out).config.tasks == ["one/mc", "two/mc"]


@pytest.mark.parametrize("value, named", [("nope", "'nope'"), ("legal/commonsense",
                                                               "'legal/commonsense'")])
def test_an_unknown_task_is_exit_2_naming_it_and_the_known_ones(run_cli: Cli, value: str,
                                                                named: str) -> None:
    code, _, err = run_cli("eval", LEGAL, "--model", "fake", "--tasks", f"clause_type,{value}",
                           "--no-progress")
    assert code == 2
    assert f"--tasks {named} names no task of the suites being evaluated (tasks: " \
           "legal/clause_type, legal/legal_qa, legal/plain_language, legal/doctrine_mc, " \
           "legal/legal_corpus)" in err
    assert "Traceback" not in err


def test_an_empty_task_name_is_exit_2(run_cli: Cli) -> None:
    code, _, err = run_cli("eval", LEGAL, "--model", "fake", "--tasks", "clause_type,,x")
    assert code == 2 and "--tasks 'clause_type,,x': an empty task name" in err


def test_demo_checks_the_tasks_before_fetching_the_model(run_cli: Cli, tmp_path: Path) -> None:
    code, out, err = run_cli("demo", "--tasks", "clause_typ", "--out", tmp_path / "demo",
                             "--report", tmp_path / "demo.html")
    assert code == 2 and "--tasks 'clause_typ' names no task" in err
    assert "[1/5]" not in out  # nothing was started


def test_a_run_of_some_tasks_compares_only_with_a_run_of_the_same_tasks(
        run_cli: Cli, tmp_path: Path) -> None:
    def run(name: str, *tasks: str) -> Path:
        out = tmp_path / f"{name}.json"
        code, _, err = run_cli("eval", LEGAL, "--model", f"fake:{len(name)}", "--limit", "5",
                               *tasks, "--no-progress", "-o", out)
        assert code == 0, err
        return out

    full, part, other = run("full"), run("part", "--tasks", "clause_type"), \
        run("other_part", "--tasks", "clause_type")
    code, _, err = run_cli("compare", full, part)
    assert code == 2
    assert "task legal/legal_qa is only in the base run" in err
    assert "(tuned run: at most 5 items per task (--limit 5); only the task(s) " \
           "legal/clause_type (--tasks))" in err
    code, out, err = run_cli("compare", part, other, "--format", "json")
    assert code in (0, 1), err
    assert {r["task"] for r in json.loads(out)["rows"]} == {"clause_type"}


def test_the_result_cache_keeps_selected_and_whole_suites_apart(run_cli: Cli, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "home"))
    part, full = tmp_path / "part.json", tmp_path / "full.json"
    for out, extra in ((part, ["--tasks", "doctrine_mc"]), (full, [])):
        code, _, err = run_cli("eval", LEGAL, "--model", "fake", "--limit", "3", "--cache",
                               *extra, "--no-progress", "-o", out)
        assert code == 0, err
    assert tasks_of(part) == [("legal", ["doctrine_mc", *DOCTRINE_VARIANTS])]
    assert len(tasks_of(full)[0][1]) == 8 and read_run(full).config.cached_suites == []
    again = tmp_path / "again.json"
    run_cli("eval", LEGAL, "--model", "fake", "--limit", "3", "--cache", "--tasks",
            "doctrine_mc", "--no-progress", "-o", again)
    assert read_run(again).config.cached_suites == ["legal"]
    assert tasks_of(again) == [("legal", ["doctrine_mc", *DOCTRINE_VARIANTS])]


@pytest.mark.parametrize("config, reason", [
    ({}, None),
    ({"subset": 1.0, "task_subset": {"clause_type": 1.0}}, None),
    ({"subset": 1}, "a seeded sample of 1 item of each task (--subset 1)"),
    ({"subset": 0.25}, "a seeded sample of 25% of each task (--subset 0.25)"),
    ({"task_subset": {"legal/legal_qa": 0.5, "clause_type": 1.0}},
     "a seeded sample of task(s) legal/legal_qa (50%) (--subset TASK=N|F)"),
    ({"limit": 10, "tasks": ["legal/clause_type"]},
     "at most 10 items per task (--limit 10); only the task(s) legal/clause_type (--tasks)"),
])
def test_partial_reason_covers_limit_subset_and_tasks(config: dict, reason: str | None) -> None:
    assert RunConfig.model_validate(config).partial_reason() == reason
    written = json.loads(RunConfig.model_validate(config).model_dump_json())
    assert RunConfig.model_validate(written).partial_reason() == reason  # 1.0 stays whole


def test_a_suite_rule_for_a_task_left_out_is_unchecked_not_an_error(run_cli: Cli,
                                                                    tmp_path: Path) -> None:
    code, _, err = run_cli("init", tmp_path / "s")
    assert code == 0, err
    yaml_path = tmp_path / "s" / "suite.yaml"
    yaml_path.write_text(yaml_path.read_text().replace(
        "  - headline:not-regressed\n", "  - headline:not-regressed\n  - short_answers:f1:>=0.5\n"))
    for seed in ("1", "2"):
        code, _, err = run_cli("eval", tmp_path / "s", "--tasks", "capitals", "--model",
                               f"fake:{seed}", "--no-progress", "-o", tmp_path / f"{seed}.json")
        assert code == 0, err
    code, out, err = run_cli("compare", tmp_path / "1.json", tmp_path / "2.json",
                             "--format", "json")
    assert code == 1, err  # the rule could not be checked: a failure, said as such
    rules = {r["rule"]: r for r in json.loads(out)["gate"]}
    assert rules["s/short_answers:f1:>=0.5"]["outcome"] == "unchecked"
    assert rules["s:headline:not-regressed"]["outcome"] == "passed"
    code, _, err = run_cli("compare", tmp_path / "1.json", tmp_path / "2.json",
                           "--allow-unchecked", "s/short_answers:f1:>=0.5")
    assert code == 0, err
