"""``ftguard suites list``, ``suites schema`` and ``ftguard init``, run as a user would."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import REPO
from ftguard.suite import load_suite
from ftguard.suite.json_schema import SCHEMA_FILENAME, suite_schema
from ftguard.suite.shipped import shipped_root


def _shipped_yaml() -> list[Path]:
    return sorted(shipped_root().rglob("suite.yaml"))


def test_list_counts_match_the_loaded_suites(run_cli, make_suite) -> None:
    mine = make_suite(name="mine")
    code, out, err = run_cli("suites", "list", mine.parent, "--format", "json")
    assert code == 0, err
    rows = {r["suite"]: r for r in json.loads(out)}
    for path in [*_shipped_yaml(), mine / "suite.yaml"]:
        suite = load_suite(path.parent)
        row = rows[suite.name]
        assert row["role"] == suite.spec.role and row["version"] == suite.spec.version
        assert row["tasks"] == len(suite.tasks)
        assert row["items"] == sum(len(t.instances) for t in suite.tasks)
        assert row["kinds"] == list(dict.fromkeys(t.spec.kind for t in suite.tasks))
        assert row["headline"] == [f"{t.name}:{t.spec.metric_names[0]}" if t.spec.metric_names
                                   else f"{t.name}:(lm-eval's)" for t in suite.tasks]
        assert row["shipped"] == (path.parent != mine)
    assert rows["legal"]["items"] > 500  # the real shipped suite, not an empty placeholder


def test_list_csv_and_a_broken_suite(run_cli, make_suite) -> None:
    broken = make_suite("name: broken\nversion: 1\nrole: target\ntasks: []\n", name="broken")
    code, out, err = run_cli("suites", "list", broken, "--no-shipped", "--format", "csv")
    assert code == 2
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert row["suite"] == "broken" and row["items"] == "0" and "tasks" in row["problems"]
    assert f"{broken} does not load" in err and "suites validate" in err


def test_schema_file_is_current_and_checks_the_shipped_suites(run_cli, tmp_path) -> None:
    shipped = json.loads((shipped_root() / SCHEMA_FILENAME).read_text())
    assert shipped == suite_schema(), "regenerate: ftguard suites schema -o " + str(
        shipped_root() / SCHEMA_FILENAME)
    code, out, _ = run_cli("suites", "schema")
    assert code == 0 and json.loads(out) == shipped
    task = shipped["$defs"]["TaskSpec"]
    assert "chat template" in task["properties"]["chat_template"]["description"]
    validator = jsonschema.Draft202012Validator(shipped)
    for path in _shipped_yaml():
        assert (path.read_text().splitlines()[0]
                == f"# yaml-language-server: $schema=../{SCHEMA_FILENAME}")
        assert (path.parent / ".." / SCHEMA_FILENAME).resolve().is_file()
        data = yaml.safe_load(path.read_text())
        assert list(validator.iter_errors(data)) == []
        data["tasks"][0]["colour"] = "blue"
        assert [e.validator for e in validator.iter_errors(data)] == ["additionalProperties"]
    out_file = tmp_path / "s.json"
    assert run_cli("suites", "schema", "--out", out_file)[0] == 0
    assert json.loads(out_file.read_text()) == shipped


@pytest.mark.parametrize("kinds", [[], ["choice,generate"], ["perplexity", "classify"]])
def test_init_writes_a_suite_that_validates_and_runs(run_cli, tmp_path, kinds) -> None:
    folder = tmp_path / "my_suite"
    args = [a for k in kinds for a in ("--kind", k)]
    code, _, err = run_cli("init", folder, *args)
    assert code == 0, err
    text = (folder / "suite.yaml").read_text()
    schema_line = text.splitlines()[0]
    assert schema_line == "# yaml-language-server: $schema=suite.schema.json"
    assert json.loads((folder / "suite.schema.json").read_text()) == suite_schema()
    suite = load_suite(folder)
    want = [k for k in ("choice", "classify", "generate", "perplexity")
            if not kinds or any(k in a for a in kinds)]
    assert [t.spec.kind for t in suite.tasks] == want
    readme = (folder / "README.md").read_text()
    used = {key for task in yaml.safe_load(text)["tasks"] for key in task} | set(
        yaml.safe_load(text))
    assert all(f"`{key}`" in readme for key in used), used
    assert run_cli("suites", "validate", folder)[0] == 0
    for seed in ("0", "1"):
        code, _, err = run_cli("eval", folder, "--model", f"fake:{seed}", "--no-progress",
                               "--out", tmp_path / f"{seed}.json")
        assert code == 0, err
    record = json.loads((tmp_path / "0.json").read_text())
    assert [t["name"] for t in record["suites"][0]["tasks"]] == [t.name for t in suite.tasks]
    code, out, err = run_cli("compare", tmp_path / "0.json", tmp_path / "1.json",
                             "--format", "json")
    assert code in (0, 1), err
    assert {r["task"] for r in json.loads(out)["rows"]} == {t.name for t in suite.tasks}


def test_init_refuses_to_overwrite_and_bad_kinds(run_cli, tmp_path) -> None:
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    code, _, err = run_cli("init", folder)
    assert code == 2 and "not empty" in err and "never overwrites" in err
    assert (folder / "notes.txt").read_text() == "mine" and not (folder / "suite.yaml").exists()
    code, _, err = run_cli("init", tmp_path / "new", "--kind", "choice,essay")
    assert code == 2 and "'essay'" in err and not (tmp_path / "new").exists()


def test_shipped_suites_hash_is_unchanged_by_the_schema_line() -> None:
    index = json.loads((REPO / "baselines" / "index.json").read_text())
    text = json.dumps(index)
    for path in _shipped_yaml():
        if path.parent.name in ("legal", "general"):
            assert load_suite(path.parent).hash in text
