"""ftguard eval --cache: a suite is re-evaluated only when the model, its content or the
settings changed; when nothing did, the model is not even loaded."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from conftest import MC_ROWS, suite_yaml, write_jsonl


def _suites(make_suite: Callable[..., Path]) -> tuple[Path, Path]:
    a = make_suite(suite_yaml("alpha", "target"), name="alpha")
    b = make_suite(suite_yaml("beta"), name="beta")
    return a, b


def test_cache_reuses_unchanged_suites(make_suite: Callable[..., Path], tmp_path: Path,
                                       run_cli: Callable[..., tuple[int, str, str]],
                                       monkeypatch) -> None:
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "home"))
    a, b = _suites(make_suite)

    def run(name: str, *extra: str) -> dict:
        out = tmp_path / f"{name}.json"
        code, _, err = run_cli("eval", a, b, "--model", "fake:3", "--cache", "--out", out,
                               "--no-progress", *extra)
        assert code == 0, err
        return json.loads(out.read_text())

    first = run("first")
    assert first["config"]["cached_suites"] == []
    second = run("second")
    assert second["config"]["cached_suites"] == ["alpha", "beta"]
    assert second["suites"] == first["suites"]
    write_jsonl(b / "data" / "mc.jsonl", MC_ROWS[:4])  # beta's content changes
    third = run("third")
    assert third["config"]["cached_suites"] == ["alpha"]
    assert len(third["suites"][1]["tasks"][0]["samples"]) == 4
    assert run("seeded", "--seed", "7")["config"]["cached_suites"] == []  # settings differ
    # a per-task sample size changes only the suite holding that task
    assert run("one-task", "--subset", "beta/mc=2")["config"]["cached_suites"] == ["alpha"]
    assert run("one-task-again", "--subset", "beta/mc=2")["config"]["cached_suites"] == [
        "alpha", "beta"]
    code, _, err = run_cli("eval", a, "--model", "fake:4", "--cache", "--out",
                           tmp_path / "other.json", "--no-progress")
    assert code == 0, err
    assert json.loads((tmp_path / "other.json").read_text())["config"]["cached_suites"] == []


def test_fully_cached_run_does_not_load_the_model(make_suite: Callable[..., Path],
                                                  tiny_model: Path, tmp_path: Path,
                                                  monkeypatch) -> None:
    from ftguard import api
    from ftguard.models.load import LoadOptions

    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "home"))
    a, _ = _suites(make_suite)
    load = LoadOptions(model=str(tiny_model), device="cpu")
    first = api.evaluate([a], load=load, cache=True)
    assert "model_load" in first.timings

    def refuse(options: LoadOptions) -> None:
        raise AssertionError("the model was loaded although every suite was cached")

    monkeypatch.setattr(api, "load_backend", refuse)
    second = api.evaluate([a], load=load, cache=True)
    assert second.config.cached_suites == ["alpha"]
    assert second.model.fingerprint == first.model.fingerprint
    assert second.suites[0].tasks[0].samples == first.suites[0].tasks[0].samples
