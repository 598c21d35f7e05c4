"""Several PEFT adapters evaluated on one loaded base (``evaluate_adapters``, ``eval --adapter
A --adapter B --out-dir``): the same records as separate evaluations, the base loaded once."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import MC_TASK, suite_yaml
from ftguard.api import evaluate, evaluate_adapters
from ftguard.engine.settings import RunSettings
from ftguard.models.load import LoadOptions
from ftguard.record import RunRecord, read_run

PPL_TASK = """\
  - name: corpus
    kind: perplexity
    data: data/ppl.jsonl
    prompt: "{{ text }}"
"""


def make_adapter(base: Path, folder: Path, seed: int) -> Path:
    """A LoRA adapter (r=4 on q_proj, v_proj) whose random non-zero lora_B changes outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator))
    peft_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("adapters")
    return [make_adapter(tiny_model, root / "lora-a", seed=1),
            make_adapter(tiny_model, root / "lora-b", seed=2)]


@pytest.fixture
def suite(make_suite: Callable[..., Path]) -> Path:
    return make_suite(suite_yaml("mini", tasks=MC_TASK + PPL_TASK))


@pytest.fixture
def count_loads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Paths given to AutoModelForCausalLM.from_pretrained from now on."""
    from transformers import AutoModelForCausalLM

    calls: list[Path] = []
    original = AutoModelForCausalLM.from_pretrained

    def counting(path: Path, *args: object, **kwargs: object) -> object:
        calls.append(Path(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", counting)
    return calls


def samples(record: RunRecord) -> list[tuple[str, str, str, dict[str, float]]]:
    return [(task.name, s.id, str(s.prediction), s.scores)
            for suite in record.suites for task in suite.tasks for s in task.samples]


def assert_same_run(shared: RunRecord, alone: RunRecord) -> None:
    assert shared.model == alone.model  # adapter path, fingerprint, dtype, device
    one, other = samples(shared), samples(alone)
    assert [s[:3] for s in one] == [s[:3] for s in other]  # identical predictions
    for (_, _, _, a), (_, _, _, b) in zip(one, other):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], abs=1e-5, rel=1e-6)
    for mine, theirs in zip(shared.suites, alone.suites):
        for task, twin in zip(mine.tasks, theirs.tasks):
            for name, metric in task.metrics.items():
                assert metric.value == pytest.approx(twin.metrics[name].value, abs=1e-5,
                                                     rel=1e-6)


def test_records_equal_separate_evaluations_and_base_loads_once(
        tiny_model: Path, adapters: list[Path], suite: Path, tmp_path: Path,
        count_loads: list[Path]) -> None:
    settings = RunSettings(seed=7)
    alone = [evaluate([suite], load=LoadOptions(model=str(tiny_model), adapter=str(a),
                                                device="cpu"), settings=settings)
             for a in adapters]
    base_alone = evaluate([suite], load=LoadOptions(model=str(tiny_model), device="cpu"),
                          settings=settings)
    count_loads.clear()

    records = evaluate_adapters([suite], load=LoadOptions(model=str(tiny_model), device="cpu"),
                                adapters=[str(a) for a in adapters], settings=settings,
                                out_dir=tmp_path / "runs", include_base=True)

    assert count_loads == [tiny_model]  # the base weights were read once
    base, *tuned = records
    assert_same_run(base, base_alone)
    assert base.model.adapter is None
    for record, single, adapter in zip(tuned, alone, adapters):
        assert record.model.adapter == str(adapter)
        assert_same_run(record, single)
    fingerprints = {r.model.fingerprint for r in records}
    assert len(fingerprints) == 3  # base and both adapters differ...
    assert samples(tuned[0]) != samples(tuned[1])  # ...and so do their answers
    written = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert written == ["base.json", "lora-a.json", "lora-b.json"]
    assert read_run(tmp_path / "runs" / "lora-b.json").model == tuned[1].model


def test_bad_adapter_fails_before_loading_or_evaluating(
        tiny_model: Path, tiny_model_other: Path, adapters: list[Path], suite: Path,
        tmp_path: Path, count_loads: list[Path]) -> None:
    from ftguard.errors import ModelError

    with pytest.raises(ModelError, match="no such folder"):
        evaluate_adapters([suite], load=LoadOptions(model=str(tiny_model), device="cpu"),
                          adapters=[str(adapters[0]), str(tmp_path / "missing")])
    assert count_loads == []
    with pytest.raises(ModelError, match="does not match the base model"):
        evaluate_adapters([suite], load=LoadOptions(model=str(tiny_model_other), device="cpu"),
                          adapters=[str(a) for a in adapters], out_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()  # nothing evaluated, nothing written


def _eval_base_and_both(run_cli: Callable[..., tuple[int, str, str]], tiny_model: Path,
                        adapters: list[Path], suite: Path, runs: Path,
                        fmt: str) -> tuple[str, str]:
    """``eval`` of the base and both adapters into ``runs``; (stdout, stderr)."""
    code, out, err = run_cli("eval", suite, "--model", tiny_model, "--adapter", adapters[0],
                             "--adapter", adapters[1], "--include-base", "--out-dir", runs,
                             "--device", "cpu", "--no-progress", "--format", fmt)
    assert code == 0, err
    return out, err


def test_cli_out_dir_round_trip_and_compare(
        tiny_model: Path, adapters: list[Path], suite: Path, tmp_path: Path,
        run_cli: Callable[..., tuple[int, str, str]]) -> None:
    runs = tmp_path / "runs"
    out, err = _eval_base_and_both(run_cli, tiny_model, adapters, suite, runs, "json")
    shown = json.loads(out)
    assert [r["model"]["adapter"] for r in shown] == [None, str(adapters[0]), str(adapters[1])]
    for name in ("base", "lora-a", "lora-b"):
        assert f"wrote {runs / name}.json" in err
    assert read_run(runs / "lora-a.json").model.adapter == str(adapters[0])
    code, out, err = run_cli("compare", runs / "base.json", runs / "lora-a.json")
    assert code in (0, 1), err  # comparable: a verdict, not a refusal


def test_cli_refuses_out_with_several_adapters(
        tiny_model: Path, adapters: list[Path], suite: Path, tmp_path: Path,
        run_cli: Callable[..., tuple[int, str, str]]) -> None:
    code, _, err = run_cli("eval", suite, "--model", tiny_model, "--adapter", adapters[0],
                           "--adapter", adapters[1], "--out", tmp_path / "one.json")
    assert code == 2
    assert "--out writes one RunRecord" in err and "--out-dir" in err
    assert not (tmp_path / "one.json").exists()
    code, _, err = run_cli("eval", suite, "--model", tiny_model, "--include-base",
                           "--out-dir", tmp_path / "runs")
    assert code == 2 and "goes with --adapter" in err
    code, _, err = run_cli("eval", suite, "--model", tiny_model, "--adapter", adapters[0],
                           "--adapter", f"{adapters[0]}/", "--out-dir", tmp_path / "runs")
    assert code == 2 and f"--adapter {adapters[0]}/: given twice (also as {adapters[0]})" in err
    assert not (tmp_path / "runs").exists()


def test_records_are_named_after_their_run_folders(
        tiny_model: Path, adapters: list[Path], suite: Path, tmp_path: Path,
        run_cli: Callable[..., tuple[int, str, str]]) -> None:
    """``ftguard train --out runs/a`` saves runs/a/adapter: its record is runs/a.json, and
    tables, comparisons and baselines call it ``a``."""
    runs = tmp_path / "runs"
    a = shutil.copytree(adapters[0], runs / "a" / "adapter")
    b = shutil.copytree(adapters[1], runs / "b" / "adapter")
    code, out, err = run_cli("eval", suite, "--model", tiny_model, "--adapter", a, "--adapter", b,
                             "--out-dir", runs, "--device", "cpu", "--no-progress",
                             "--format", "markdown")
    assert code == 0, err
    assert sorted(p.name for p in runs.glob("*.json")) == ["a.json", "b.json"]
    assert read_run(runs / "a.json").model.adapter == str(a)
    assert f"# a\n**a ({tiny_model} + {a})** (`sha256:" in out
    assert f"# b\n**b ({tiny_model} + {b})** (`sha256:" in out
    code, out, _ = run_cli("compare", runs / "a.json", runs / "b.json")
    assert code in (0, 1) and f": b ({tiny_model} + {b}) (sha256:" in out
    code, out, err = run_cli("baseline", "accept", runs / "a.json", "--dir", tmp_path / "bl")
    assert code == 0, err
    assert out.startswith(f"accepted a: {tmp_path / 'bl' / 'a.json'}")


def test_single_adapter_keeps_todays_behaviour(
        tiny_model: Path, adapters: list[Path], suite: Path, tmp_path: Path,
        run_cli: Callable[..., tuple[int, str, str]]) -> None:
    out = tmp_path / "tuned.json"
    code, _, err = run_cli("eval", suite, "--model", tiny_model, "--adapter", adapters[0],
                           "--out", out, "--device", "cpu", "--no-progress")
    assert code == 0, err
    assert read_run(out).model.adapter == str(adapters[0])


def test_cache_second_run_loads_nothing(
        tiny_model: Path, adapters: list[Path], suite: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, count_loads: list[Path]) -> None:
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "home"))
    options = LoadOptions(model=str(tiny_model), device="cpu")
    first = evaluate_adapters([suite], load=options, adapters=[str(a) for a in adapters],
                              cache=True, include_base=True)
    assert count_loads == [tiny_model]
    again = evaluate_adapters([suite], load=options, adapters=[str(a) for a in adapters],
                              cache=True, include_base=True)
    assert count_loads == [tiny_model]  # every suite cached: no model loaded
    for new, old in zip(again, first):
        assert new.model == old.model
        assert samples(new) == samples(old)
        assert new.config.cached_suites == ["mini"]


def test_cli_several_adapters_csv_is_one_table_named_by_record(
        tiny_model: Path, adapters: list[Path], suite: Path, tmp_path: Path,
        run_cli: Callable[..., tuple[int, str, str]]) -> None:
    import csv
    import io

    from ftguard.tables import result_rows

    runs = tmp_path / "runs"
    out, _ = _eval_base_and_both(run_cli, tiny_model, adapters, suite, runs, "csv")
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    expected = [{"model": name, **row} for name in ("base", "lora-a", "lora-b")
                for row in result_rows(read_run(runs / f"{name}.json"))]
    assert len(rows) == len(expected) == 3 * 5  # mc: acc, acc_norm; corpus: three
    for row, want in zip(rows, expected, strict=True):
        assert list(row) == list(want)
        assert float(row["value"]) == want["value"] and int(row["n"]) == want["n"]
        assert (row["model"], row["task"], row["metric"]) == (
            want["model"], want["task"], want["metric"])
