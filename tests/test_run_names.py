"""Models and adapters are named after their run folders (``runs/a/adapter`` -> ``a``), and
the fake model checks ``--adapter`` folders like a real one and answers differently per
adapter, so multi-adapter CI wiring can be dry-run without weights."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import MC_TASK, suite_yaml
from ftguard.errors import UsageError
from ftguard.models.naming import distinct_names, folder_name, model_name
from ftguard.record import ModelInfo, read_run

RunCli = Callable[..., tuple[int, str, str]]


@pytest.mark.parametrize(("path", "name"), [
    ("runs/a/adapter", "a"),
    ("runs/a/model", "a"),
    ("runs/a/adapter/", "a"),
    ("runs/a/checkpoints/checkpoint-200", "a-checkpoint-200"),
    ("runs/a/checkpoints/checkpoint-200/adapter", "a-checkpoint-200"),
    ("out/legal-v2/final", "legal-v2"),
    ("adapters/legal-v2", "legal-v2"),
    ("/adapter", "adapter"),
])
def test_folder_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str,
                     name: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert folder_name(path) == name


def test_distinct_names_take_parent_folders_until_they_differ(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert distinct_names(["runs/a/adapter", "runs/b/adapter"]) == {
        "runs/a/adapter": "a", "runs/b/adapter": "b"}
    assert distinct_names(["x/a/adapter", "y/a/adapter", "z/c"]) == {
        "x/a/adapter": "x-a", "y/a/adapter": "y-a", "z/c": "c"}
    # the base model's record is base.json: an adapter run named base steps aside
    assert distinct_names(["runs/base/adapter"], reserved=("base",)) == {
        "runs/base/adapter": "runs-base"}
    with pytest.raises(UsageError, match=r"--adapter runs/a/adapter/: given twice "
                                         r"\(also as runs/a/adapter\)"):
        distinct_names(["runs/a/adapter", "runs/a/adapter/"])


def test_model_name_of_a_record(tmp_path: Path) -> None:
    (tmp_path / "runs" / "a" / "model").mkdir(parents=True)
    full = tmp_path / "runs" / "a" / "model"

    def info(spec: str, **extra: str) -> ModelInfo:
        return ModelInfo(spec=spec, fingerprint="x", dtype="float32", backend="hf", **extra)

    assert model_name(info("smollm2-135m-instruct")) == "smollm2-135m-instruct"
    assert model_name(info("HuggingFaceTB/SmolLM2-135M")) == "SmolLM2-135M"
    assert model_name(info(str(full), path=str(full))) == "a"
    assert model_name(info("smollm2-135m-instruct", adapter="runs/b/adapter")) == "b"


def write_adapter(folder: Path, fill: float) -> Path:
    """An adapter folder the checks accept (config + safetensors weights); no torch needed."""
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 4, "target_modules": ["q_proj", "v_proj"]}))
    save_file({"base_model.model.lora_A.weight": np.full((4, 8), fill, dtype=np.float32)},
              str(folder / "adapter_model.safetensors"))
    return folder


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from conftest import write_jsonl

    monkeypatch.chdir(tmp_path)
    suite = tmp_path / "suites" / "tiny"
    suite.mkdir(parents=True)
    (suite / "suite.yaml").write_text(suite_yaml("tiny", tasks=MC_TASK))
    write_jsonl(suite / "data" / "mc.jsonl", [
        {"id": f"q{i}", "question": f"What is {i} plus 2?",
         "choices": [str(i + 2), str(i + 3), str(i + 1), str(i + 12)], "answer": 0}
        for i in range(40)])
    write_adapter(tmp_path / "runs" / "a" / "adapter", 0.5)
    write_adapter(tmp_path / "runs" / "b" / "adapter", -0.5)
    (tmp_path / "runs" / "empty").mkdir()
    return tmp_path


def test_fake_model_with_adapters_names_records_after_their_runs(workdir: Path,
                                                                 run_cli: RunCli) -> None:
    code, out, err = run_cli("eval", "suites/tiny", "--model", "fake:3", "--adapter",
                             "runs/a/adapter", "--adapter", "runs/b/adapter", "--include-base",
                             "--out-dir", "runs", "--no-progress", "--format", "markdown")
    assert code == 0, err
    assert sorted(p.name for p in (workdir / "runs").glob("*.json")) == [
        "a.json", "b.json", "base.json"]
    for name in ("base", "a", "b"):
        assert f"wrote runs/{name}.json" in err
    assert "# a\n**a (fake:3 + runs/a/adapter)** (`fake-3+" in out
    base, a, b = (read_run(workdir / "runs" / f"{n}.json") for n in ("base", "a", "b"))
    assert (base.model.adapter, a.model.adapter) == (None, "runs/a/adapter")
    assert len({base.model.fingerprint, a.model.fingerprint, b.model.fingerprint}) == 3
    assert base.model.fingerprint == "fake-3"  # what --model fake:3 alone records

    def predictions(run: object) -> list[str]:
        return [str(s.prediction) for s in run.suites[0].tasks[0].samples]  # type: ignore[attr-defined]

    # each adapter makes another deterministic model: some of 40 answers differ
    assert predictions(a) != predictions(b) and predictions(a) != predictions(base)
    code, _, err = run_cli("eval", "suites/tiny", "--model", "fake:3", "--adapter",
                           "runs/a/adapter", "--no-progress", "--out", "again.json")
    assert code == 0, err
    assert predictions(read_run(workdir / "again.json")) == predictions(a)


@pytest.mark.parametrize("several", [False, True])
@pytest.mark.parametrize(("folder", "message"), [
    ("runs/missing", "--adapter runs/missing: no such folder."),
    ("runs/empty", "--adapter runs/empty: not a PEFT adapter (no adapter_config.json)."),
])
def test_fake_model_checks_adapter_folders(workdir: Path, run_cli: RunCli, several: bool,
                                           folder: str, message: str) -> None:
    extra = ["--adapter", "runs/a/adapter", "--out-dir", "out"] if several else []
    code, out, err = run_cli("eval", "suites/tiny", "--model", "fake", *extra, "--adapter",
                             folder, "--no-progress")
    assert (code, out) == (2, "")
    assert err == f"ftguard: error: {message}" + (
        " Give the folder written by save_pretrained() of a PEFT model." if "missing" in folder
        else "") + "\n"
    assert not (workdir / "out").exists()


def test_eval_help_documents_the_fake_model(run_cli: RunCli) -> None:
    code, out, _ = run_cli("eval", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "fake[:SEED]" in text and "the dry-run model" in text and "no weights" in text
