"""The built wheel works from any folder: shipped suites by name, the CLI and the pytest plugin.

The wheel is installed into a fresh venv (tests/wheel_env.py) and run from an empty temporary
folder, so nothing of the checkout (its ``suites`` link, its ``baselines/``) can help.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from conftest import REPO
from ftguard.suite import load_suite
from ftguard.suite.shipped import shipped_root, shipped_suites
from ftguard.variant_names import is_variant_task

pytestmark = pytest.mark.slow  # builds a wheel and a venv, evaluates 1478 items (about 30 s)


def test_the_wheel_carries_every_file_of_the_shipped_suites(wheel_env) -> None:
    with zipfile.ZipFile(wheel_env.wheel) as wheel:
        names = set(wheel.namelist())
    files = {f"ftguard/suites/{p.relative_to(shipped_root()).as_posix()}"
             for p in shipped_root().rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert {"ftguard/suites/legal/suite.yaml", "ftguard/suites/general/replay.jsonl",
            "ftguard/suites/legal/data/clause_type.jsonl"} <= files
    assert files - names == set()


def test_eval_by_suite_name_from_an_empty_folder(wheel_env, tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "user"
    cwd.mkdir()
    done = wheel_env.run(["ftguard", "eval", "legal", "general", "--model", "fake",
                          "--out", "r.json"], cwd, home)
    assert done.returncode == 0, done.stderr
    record = json.loads((cwd / "r.json").read_text())
    expected = {name: load_suite(path) for name, path in shipped_suites().items()
                if name in ("legal", "general")}
    got = {s["name"]: s for s in record["suites"]}
    assert list(got) == ["legal", "general"]
    for name, suite in expected.items():
        assert got[name]["hash"] == suite.hash
        counts = {t["name"]: len(t["samples"]) for t in got[name]["tasks"]}
        # each task's own items, then each of its variants' (TASK@VARIANT) on the same items
        assert counts == {v.name: len(v.instances) for t in suite.tasks
                          for v in (t, *t.variants)}
    rows = [(t["name"], len(t["samples"])) for s in record["suites"] for t in s["tasks"]]
    assert sum(n for name, n in rows if not is_variant_task(name)) == 577 + 1041  # the suites' own items
    # doctrine_mc's 3 variants of 130 items, world_knowledge's 3 of 220
    assert sum(n for name, n in rows if is_variant_task(name)) == 3 * 130 + 3 * 220
    # the suites were read from the installed package, not from the checkout
    assert all(Path(s["path"]).is_relative_to(wheel_env.venv) for s in record["suites"])
    assert str(REPO) not in json.dumps([s["path"] for s in record["suites"]])


def test_unknown_suite_name_lists_the_shipped_ones(wheel_env, tmp_path: Path) -> None:
    done = wheel_env.run(["ftguard", "eval", "legl", "--model", "fake"], tmp_path, tmp_path / "h")
    assert done.returncode == 2
    assert "legl" in done.stderr and "shipped: general, legal" in done.stderr
    assert "Did you mean 'legal'?" in done.stderr and "Traceback" not in done.stderr


def test_pytest_plugin_gates_a_shipped_suite_by_name(wheel_env, tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "user"
    cwd.mkdir()
    pytest_args = [wheel_env.python, "-m", "pytest", "-p", "no:cacheprovider", "--ftguard",
                   "legal", "--ftguard-model", "fake"]
    accept = wheel_env.run([*pytest_args, "--ftguard-update-baseline"], cwd, home)
    assert accept.returncode == 0, accept.stdout + accept.stderr
    index = json.loads((cwd / "baselines" / "index.json").read_text())
    assert list(index["entries"][0]["suites"]) == ["legal"]
    assert index["entries"][0]["suites"]["legal"] == load_suite(shipped_suites()["legal"]).hash
    gate = wheel_env.run(pytest_args, cwd, home)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "5 passed" in gate.stdout
    tree = wheel_env.run([*pytest_args, "--collect-only"], cwd, home).stdout
    assert f"<Dir {wheel_env.venv.name}>" in tree and "<Dir site-packages>" in tree  # the wheel's
    assert "<Dir legal>" in tree and "<Dir general>" not in tree
