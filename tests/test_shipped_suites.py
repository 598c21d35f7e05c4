"""Shipped suites are package data, found by name wherever a SUITE is accepted; a path wins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, write_suite
from ftguard.api import load_suites
from ftguard.demo import shipped_suites as demo_shipped_root
from ftguard.errors import SuiteError
from ftguard.suite import find_suites, load_suite
from ftguard.suite.shipped import shipped_root, shipped_suites

pytest_plugins = ["pytester"]


def test_shipped_suites_live_in_the_package_and_the_root_link_points_there() -> None:
    assert shipped_root() == REPO / "ftguard" / "suites"
    assert {"legal", "general"} <= set(shipped_suites())
    assert shipped_suites()["legal"] == shipped_root() / "legal"
    assert (REPO / "suites").is_symlink() and (REPO / "suites").resolve() == shipped_root()
    assert demo_shipped_root() == shipped_root()


def test_committed_baseline_hashes_still_match_the_moved_suites() -> None:
    index = json.loads((REPO / "baselines" / "index.json").read_text())
    for name, digest in index["entries"][0]["suites"].items():
        assert load_suite(shipped_suites()[name]).hash == digest
        assert load_suite(REPO / "suites" / name).hash == digest


def test_a_name_resolves_to_the_shipped_suite_from_any_folder(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_suites([Path("legal"), Path("general")]) == [shipped_root() / "legal",
                                                            shipped_root() / "general"]
    suites = load_suites(["legal"])
    assert [s.name for s in suites] == ["legal"] and len(suites[0].tasks) == 5


def test_an_existing_path_wins_over_a_shipped_name(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write_suite(tmp_path / "legal")  # a user's own folder that happens to be called legal
    monkeypatch.chdir(tmp_path)
    assert find_suites([Path("legal")]) == [tmp_path / "legal"]
    assert [s.name for s in load_suites(["legal"])] == ["smoke"]


def test_an_unknown_name_lists_the_shipped_suites_and_suggests(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               run_cli) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SuiteError) as caught:
        find_suites([Path("genral")])
    text = str(caught.value)
    assert "genral: is neither an existing path nor a shipped suite (shipped: general, legal, safety, standard)" \
        in text
    assert "Did you mean 'general'?" in text and "path of a suite folder" in text
    code, _, err = run_cli("suites", "validate", "lgal")
    assert code == 2 and "Did you mean 'legal'?" in err and "Traceback" not in err
    code, _, err = run_cli("eval", "nowhere/legal", "--model", "fake")
    assert code == 2 and "nowhere/legal: does not exist" in err


def test_validate_and_power_take_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       run_cli) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("suites", "validate", "legal", "general")
    assert code == 0
    assert "legal v1 (target): 5 tasks, 577 items" in out
    assert "general v1 (general): 7 tasks, 1041 items" in out
    code, out, _ = run_cli("power", "legal")
    assert code == 0 and "clause_type" in out and "arithmetic" not in out


def test_pytest_plugin_takes_a_shipped_name(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", "--ftguard", "legal",
                                "--ftguard-model", "fake", "--collect-only", "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*clause_type::accuracy*", "5 tests collected*"])
    bad = pytester.runpytest("--ftguard", "legl", "--ftguard-model", "fake")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    wanted = ("*--ftguard legl: is neither an existing path nor a shipped suite "
              "(shipped: general, legal, safety, standard). Did you mean 'legal'?*")
    bad.stderr.fnmatch_lines([wanted])
