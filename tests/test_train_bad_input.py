"""ftguard train on bad input: exit 2, one clear paragraph naming the file/line/key/flag,
and nothing written to the output folder."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import build_tiny_model, write_jsonl

Run = Callable[..., tuple[int, str, str]]
GOOD = [{"instruction": "Say hi.", "output": "hi"}, {"instruction": "Say yes.", "output": "yes"}]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("bad") / "tiny")


def fails(run_cli: Run, *args: object) -> str:
    code, _, err = run_cli("train", *args)
    assert code == 2, err
    assert "Traceback" not in err
    return err


def assert_untouched(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def test_empty_and_malformed_training_files(tiny: Path, tmp_path: Path, run_cli: Run) -> None:
    out = tmp_path / "out"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    err = fails(run_cli, "--model", tiny, "--data", empty, "--out", out)
    assert "empty.jsonl" in err and "empty" in err
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": \n'
                      '{"instruction": "d"}\n')
    err = fails(run_cli, "--model", tiny, "--data", broken, "--out", out)
    assert "broken.jsonl:2" in err and "not valid JSON" in err
    assert "broken.jsonl:3" in err and "output" in err  # both problems at once
    assert_untouched(out)


def test_missing_data_and_file(tiny: Path, tmp_path: Path, run_cli: Run) -> None:
    out = tmp_path / "out"
    err = fails(run_cli, "--model", tiny, "--out", out)
    assert "no training data" in err and "--data" in err
    err = fails(run_cli, "--model", tiny, "--data", tmp_path / "nope.jsonl", "--out", out)
    assert "nope.jsonl: no such file" in err
    assert_untouched(out)


def test_every_example_too_long_is_reported(tiny: Path, tmp_path: Path, run_cli: Run) -> None:
    data = write_jsonl(tmp_path / "long.jsonl", [{"prompt": "word " * 200, "completion": "x"}])
    err = fails(run_cli, "--model", tiny, "--data", data, "--out", tmp_path / "out",
                "--max-length", "32")
    assert "all 1 examples were dropped" in err and "max_length" in err


def test_truncation_counts_are_reported(tiny: Path, tmp_path: Path, run_cli: Run) -> None:
    rows = [{"prompt": "Say:", "completion": " word" * 60},
            {"prompt": "Say:", "completion": " hi"}, {"prompt": "Say:", "completion": " yes"}]
    data = write_jsonl(tmp_path / "mixed.jsonl", rows)
    code, _, err = run_cli("train", "--model", tiny, "--data", data, "--out", tmp_path / "out",
                           "--max-length", "24", "--max-steps", "1", "--quiet")
    assert code == 0, err
    from ftguard.train.record import read_train_record

    record = read_train_record(tmp_path / "out")
    assert record.data.sources[0].truncated == 1
    assert any("1 of 3 examples were truncated" in w for w in record.warnings)


def test_unknown_target_modules_lists_the_linear_layers(tiny: Path, tmp_path: Path,
                                                        run_cli: Run) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", GOOD)
    config = tmp_path / "c.yaml"
    config.write_text(f"model: {tiny}\ndata:\n  train: {data}\nlora:\n  target_modules: "
                      "[q_proj, attn_qkv]\n")
    err = fails(run_cli, config, "--out", tmp_path / "out")
    assert "attn_qkv" in err and "q_proj, k_proj, v_proj, o_proj" in err
    assert_untouched(tmp_path / "out")


def test_qlora_without_bitsandbytes(tiny: Path, tmp_path: Path, run_cli: Run,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", GOOD)
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails as if not installed
    err = fails(run_cli, "--model", tiny, "--data", data, "--out", tmp_path / "out",
                "--method", "qlora")
    assert "qlora needs bitsandbytes" in err and "--method lora" in err
    assert_untouched(tmp_path / "out")


@pytest.mark.parametrize(("flag", "value", "key"), [
    ("--lr", "5", "optim.lr"), ("--lr", "0", "optim.lr"),
    ("--prompt-loss-weight", "1.5", "data.prompt_loss_weight"),
    ("--batch-size", "0", "optim.batch_size"), ("--epochs", "-1", "optim.epochs"),
])
def test_out_of_range_values(tiny: Path, tmp_path: Path, run_cli: Run, flag: str, value: str,
                             key: str) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", GOOD)
    err = fails(run_cli, "--model", tiny, "--data", data, "--out", tmp_path / "out", flag, value)
    assert key in err and value in err
    assert_untouched(tmp_path / "out")


def test_config_file_problems_have_lines(tmp_path: Path, run_cli: Run) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", GOOD)
    config = tmp_path / "c.yaml"
    config.write_text(f"data:\n  mix:\n    - path: {data}\n      ratio: 1.5\n"
                      "optim:\n  learning_rate: 0.1\n")
    err = fails(run_cli, config, "--out", tmp_path / "out")
    assert "c.yaml:4 [data.mix[0].ratio]" in err
    assert "c.yaml:6 [optim.learning_rate]: unknown key" in err and "lr" in err
    config.write_text(f"data:\n  mix:\n    - {{path: {data}, ratio: 0.5}}\n"
                      f"    - {{path: {data}, ratio: 0.4}}\n")
    err = fails(run_cli, config, "--out", tmp_path / "out")
    assert "add up to 0.9" in err


def test_output_folder_rules(tiny: Path, tmp_path: Path, run_cli: Run) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", GOOD)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    err = fails(run_cli, "--model", tiny, "--data", data, "--out", out)
    assert "not empty" in err and "--resume" in err and "--overwrite" in err
    err = fails(run_cli, "--model", tiny, "--data", data, "--out", out, "--resume")
    assert "holds no earlier run" in err
    assert (out / "keep.txt").read_text() == "mine"
    err = fails(run_cli, "--model", tiny, "--data", data)
    assert "--out" in err


def test_streaming_needs_max_steps(tiny: Path, tmp_path: Path, run_cli: Run) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", GOOD)
    config = tmp_path / "c.yaml"
    config.write_text(f"model: {tiny}\ndata:\n  train: {data}\n  streaming: true\n")
    err = fails(run_cli, config, "--out", tmp_path / "out")
    assert "max_steps" in err
    assert_untouched(tmp_path / "out")


def test_per_task_eval_subset_names_a_task(tiny: Path, tmp_path: Path, run_cli: Run,
                                           make_suite: Callable[..., Path]) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", GOOD)
    suite = make_suite()
    config = tmp_path / "c.yaml"
    for subset, says in (("{mcq: 1.0}", "'mcq' names no task"),
                         ("{mc: 1.5}", "task_subset")):
        config.write_text(f"model: {tiny}\ndata:\n  train: {data}\neval:\n  suites: [{suite}]\n"
                          f"  task_subset: {subset}\n")
        err = fails(run_cli, config, "--out", tmp_path / "out")
        assert says in err and ("smoke/mc" in err or "1.5" in err), err
        assert_untouched(tmp_path / "out")
