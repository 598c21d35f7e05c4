"""RunRecords (atomic, symmetric read/write) and `ftguard eval` on the fake backend."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ftguard.errors import RecordError
from ftguard.record import RunRecord, read_run, write_run


def test_eval_writes_a_complete_record(run_cli, make_suite, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "x.json"
    code, stdout, _ = run_cli("eval", make_suite(), "--model", "fake:3", "--out", out,
                              "--no-progress")
    assert code == 0
    assert "smoke" in stdout and "acc" in stdout and "perplexity" in stdout
    record = read_run(out)
    assert record.model.backend == "fake" and record.config.seed == 1234
    tasks = {t.name: t for t in record.suites[0].tasks}
    assert set(tasks) == {"mc", "qa", "sentiment", "corpus"}
    mc = tasks["mc"]
    assert len(mc.samples) == 6 and all(len(s.loglikelihoods or []) == 4 for s in mc.samples)
    acc = mc.metrics["acc"]
    assert acc.value == pytest.approx(sum(s.scores["acc"] for s in mc.samples) / 6)
    assert acc.ci_low <= acc.value <= acc.ci_high and acc.n == 6 and acc.higher_is_better
    assert tasks["qa"].samples[1].target == ["blue", "light blue"]
    assert "nrefs:var" in tasks["qa"].signatures["bleu"]  # one item has 1 reference, one 2
    assert tasks["qa"].metrics["bleu"].aggregation == "corpus"
    assert set(tasks["sentiment"].metrics) == {"accuracy", "macro_f1"}
    assert tasks["corpus"].metrics["perplexity"].higher_is_better is False
    assert not [p for p in out.parent.iterdir() if p.name != "x.json"]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # shareable, not mkstemp's 0600


def test_limit_and_formats(run_cli, make_suite) -> None:
    root = make_suite()
    code, out, _ = run_cli("eval", root, "--model", "fake", "--limit", "2", "--format", "json",
                           "--no-progress")
    rows = json.loads(out)["results"]
    assert code == 0 and {r["n"] for r in rows} == {2}
    code, out, _ = run_cli("eval", root, "--model", "fake", "--format", "markdown", "--no-progress")
    assert code == 0 and "| suite | task | metric |" in out


def _forty_questions(make_suite) -> Path:
    """The smoke suite with 40 multiple-choice items in ``mc``."""
    from conftest import write_jsonl

    root = make_suite()
    write_jsonl(root / "data" / "mc.jsonl",
                [{"id": f"q{i}", "question": f"Question number {i}?",
                  "choices": ["yes", "no", "maybe", "never"], "answer": i % 4}
                 for i in range(40)])
    return root


def test_subset_is_a_seeded_nested_sample(run_cli, make_suite, tmp_path: Path) -> None:
    root = _forty_questions(make_suite)

    def ids(*flags: str) -> list[str]:
        out = tmp_path / "run.json"
        code, _, err = run_cli("eval", root, "--model", "fake", "--no-progress", "--out", out,
                               *flags)
        assert code == 0, err
        mc = next(t for t in read_run(out).suites[0].tasks if t.name == "mc")
        return [s.id for s in mc.samples]

    ten, quarter, again = ids("--subset", "10"), ids("--subset", "0.25"), ids("--subset", "10")
    assert len(ten) == 10 and ten == again and ten != [f"q{i}" for i in range(10)]
    assert len(quarter) == 10 and quarter == ten  # 25% of 40 = the same first 10 of one order
    five = ids("--subset", "0.1")
    assert len(five) == 4 and set(five) < set(ten)  # a smaller subset lies inside a larger
    assert ids("--subset", "10", "--seed", "7") != ten
    for bad in ("0", "1.5", "-3", "x"):
        code, _, err = run_cli("eval", root, "--model", "fake", "--subset", bad)
        assert code == 2 and "--subset" in err


@pytest.mark.parametrize(("text", "value"), [
    ("1", 1), ("40", 40), ("+5", 5), (" 7", 7), ("1000000", 1_000_000),  # counts
    ("1.0", 1.0), ("0.25", 0.25), (".5", 0.5), ("1e-1", 0.1), ("0.0001", 0.0001),  # fractions
    ("clause_type=1.0", ("clause_type", 1.0)), ("legal/clause_type=3", ("legal/clause_type", 3)),
])
def test_subset_accepts_what_the_readme_says(text: str, value: object) -> None:
    from ftguard.cli.options import subset_item

    key, parsed = value if isinstance(value, tuple) else (None, value)
    assert subset_item(text) == (key, parsed)
    assert type(subset_item(text)[1]) is type(parsed)  # "1" is one item, "1.0" every item


@pytest.mark.parametrize(("text", "says"), [
    ("0", "whole number of items >= 1"), ("-3", "0 < F <= 1"), ("0.0", "0 < F <= 1"),
    ("1.5", "0 < F <= 1"), ("2.0", "write 2 for 2 items"), ("1e1", "write 10 for 10 items"),
    ("nan", "'nan'"), ("inf", "'inf'"), ("0x10", "'0x10'"), ("", "''"),
])
def test_subset_refuses_everything_else(text: str, says: str) -> None:
    import argparse

    from ftguard.cli.options import subset_item

    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(says)):
        subset_item(text)


def test_subset_per_task(run_cli, make_suite, tmp_path: Path) -> None:
    root = _forty_questions(make_suite)
    out = tmp_path / "run.json"

    def sizes(*flags: str) -> dict[str, int]:
        code, _, err = run_cli("eval", root, "--model", "fake", "--no-progress", "--out", out,
                               *flags)
        assert code == 0, err
        return {t.name: len(t.samples) for t in read_run(out).suites[0].tasks}

    everything = sizes()
    assert everything == {"mc": 40, "qa": 2, "sentiment": 3, "corpus": 2}
    # one task in full, the others sampled; a suite/task key wins over a bare task key
    assert sizes("--subset", "0.1", "--subset", "mc=1.0") == {
        "mc": 40, "qa": 1, "sentiment": 1, "corpus": 1}
    assert sizes("--subset", "mc=1.0", "--subset", "smoke/mc=7") == {**everything, "mc": 7}
    assert read_run(out).config.task_subset == {"mc": 1.0, "smoke/mc": 7}
    # the 7 items of mc are the first 7 of the same seeded order as --subset 7
    seven = [s.id for s in read_run(out).suites[0].tasks[0].samples]
    sizes("--subset", "7")
    assert [s.id for s in read_run(out).suites[0].tasks[0].samples] == seven
    for flags, says in ((("--subset", "mcq=1.0"), "'mcq' names no task"),
                        (("--subset", "0.5", "--subset", "0.2"), "one sample size"),
                        (("--subset", "mc=2", "--subset", "mc=3"), "given twice"),
                        (("--subset", "mc=1.5"), "--subset"),
                        (("--subset", "=3"), "name a task")):
        code, _, err = run_cli("eval", root, "--model", "fake", "--no-progress", *flags)
        assert code == 2 and says in err, (flags, err)
        assert "Traceback" not in err

def test_record_round_trip_and_read_errors(tmp_path: Path, run_cli, make_suite) -> None:
    out = tmp_path / "r.json"
    run_cli("eval", make_suite(), "--model", "fake", "--out", out, "--no-progress")
    record = read_run(out)
    write_run(record, tmp_path / "copy.json")
    assert read_run(tmp_path / "copy.json") == record
    broken = tmp_path / "broken.json"
    broken.write_text(out.read_text()[:200])
    with pytest.raises(RecordError, match="not valid JSON"):
        read_run(broken)
    with pytest.raises(RecordError, match="no such run record"):
        read_run(tmp_path / "missing.json")
    data = json.loads(out.read_text())
    data["suites"][0]["tasks"][0]["samples"][0]["id"] = None
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(RecordError, match="suites.0.tasks.0.samples.0.id"):
        read_run(tmp_path / "bad.json")


def test_failed_write_keeps_the_old_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           run_cli, make_suite) -> None:
    out = tmp_path / "r.json"
    run_cli("eval", make_suite(), "--model", "fake", "--out", out, "--no-progress")
    before = out.read_bytes()
    record = read_run(out)

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_run(record, out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"] or all(
        not p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_cli_help_and_validate_do_not_import_torch(make_suite) -> None:
    code = ("import sys; from ftguard.cli.main import main; rc = main(['suites', 'validate', sys.argv[1]]);"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import';"
            "sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code, str(make_suite())],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_console_script_exit_codes(make_suite, tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "ftguard"
    ok = subprocess.run([exe, "eval", make_suite(), "--model", "fake", "--no-progress"],
                        capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([exe, "eval", tmp_path / "nope"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "does not exist" in bad.stderr


def test_every_record_and_suite_field_is_documented() -> None:
    from ftguard.record import MetricResult, ModelInfo, SampleResult, SuiteResult, TaskResult
    from ftguard.suite.schema import FewShotSpec, GenerationSpec, SuiteSpec, TaskSpec

    models = (RunRecord, ModelInfo, SuiteResult, TaskResult, MetricResult, SampleResult,
              SuiteSpec, TaskSpec, FewShotSpec, GenerationSpec)
    missing = [f"{m.__name__}.{name}" for m in models for name, field in m.model_fields.items()
               if not field.description]
    assert missing == []


def test_public_api_is_complete_and_lazy() -> None:
    code = ("import sys, ftguard; assert 'ftguard.api' not in sys.modules;"
            "names = [getattr(ftguard, n) for n in ftguard.__all__];"
            "assert 'ftguard.api' in sys.modules and 'torch' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
