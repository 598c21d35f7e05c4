"""``ftguard --version``, ``--format csv`` (eval, compare, gate, import-lmeval) and ``ftguard
report`` without ``-o``."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, binary_run, flipped_pair
from ftguard.csv_table import csv_cell, csv_table
from ftguard.record import ComparisonRow, write_run
from ftguard.tables import RESULT_FIELDS


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def as_json_value(cell: str, like: object) -> object:
    """A CSV cell read back as the type of the JSON value ``like``."""
    if like is None:
        return None if cell == "" else cell
    if isinstance(like, bool):
        return {"true": True, "false": False}[cell]
    if isinstance(like, int):
        return int(cell)
    if isinstance(like, float):
        return float(cell)
    if isinstance(like, list):
        return cell.split("; ") if cell else []
    return cell


def test_version_prints_the_package_version_without_heavy_imports() -> None:
    expected = re.search(r'^version = "(.+)"$', (REPO / "pyproject.toml").read_text(),
                         re.MULTILINE).group(1)  # type: ignore[union-attr]
    done = subprocess.run([sys.executable, "-m", "ftguard", "--version"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"ftguard {expected}\n", "")
    code = ("import sys; from ftguard.cli.main import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit as exc:\n    rc = exc.code\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'peft', 'numpy', 'ftguard.api')"
            " if m in sys.modules)\nprint(rc, heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout.splitlines()[-1] == "0 []", done.stderr


def test_eval_csv_holds_the_json_values_exactly(run_cli, make_suite) -> None:
    root = make_suite()
    code, out_json, err = run_cli("eval", root, "--model", "fake", "--format", "json",
                                  "--no-progress")
    assert code == 0, err
    code, out_csv, err = run_cli("eval", root, "--model", "fake", "--format", "csv",
                                 "--no-progress")
    assert code == 0, err
    assert out_csv.startswith(",".join(RESULT_FIELDS) + "\r\n") and out_csv.endswith("\r\n")
    assert "\r\n\n" not in out_csv  # the CLI adds no line of its own
    expected = json.loads(out_json)["results"]
    rows = parse_csv(out_csv)
    assert len(rows) == len(expected) == 10
    for row, want in zip(rows, expected, strict=True):
        assert list(row) == list(want)
        assert {k: as_json_value(v, want[k]) for k, v in row.items()} == want
    perplexity = next(r for r in rows if r["metric"] == "perplexity")
    assert perplexity["higher_is_better"] == "false"
    assert len(perplexity["value"]) > 8  # repr, not the table's 4 decimals


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    base, tuned = flipped_pair(n=200, right_to_wrong=30, wrong_to_right=5)
    a = binary_run("base", {("legal", "clauses"): base, ("general", "facts"): base})
    b = binary_run("tuned", {("legal", "clauses"): tuned, ("general", "facts"): base})
    write_run(a, tmp_path / "a.json")
    write_run(b, tmp_path / "b.json")
    return tmp_path / "a.json", tmp_path / "b.json"


def test_compare_csv_holds_every_row_field_of_the_json(run_cli, tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    args = ("compare", a, b, "--resamples", "500", "--fail-on", "legal:acc:not-regressed")
    code, out_json, err = run_cli(*args, "--format", "json")
    assert code == 1, err
    code, out_csv, err = run_cli(*args, "--format", "csv")
    assert code == 1, err  # the same gate, the same exit code
    expected = json.loads(out_json)["rows"]
    rows = parse_csv(out_csv)
    assert list(rows[0]) == list(ComparisonRow.model_fields)
    assert len(rows) == len(expected) == 2
    for row, want in zip(rows, expected, strict=True):
        assert {k: as_json_value(v, want[k]) for k, v in row.items()} == want
    legal = rows[0]
    assert (legal["suite"], legal["verdict"], legal["gated"], legal["failed"]) == (
        "legal", "regressed", "true", "true")
    assert float(legal["delta"]) == pytest.approx(-25 / 200)  # a number, not "'-0.125"
    assert legal["delta"] == repr(-25 / 200) and legal["ci_high"].startswith("-")
    assert legal["reason"] and not legal["reason"].startswith("'")


def test_gate_offers_csv_too(run_cli, tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    code, out, err = run_cli("gate", "--baseline", a, "--candidate", b, "--resamples", "200",
                             "--format", "csv")
    assert code == 1, err
    assert [r["task"] for r in parse_csv(out)] == ["clauses", "facts"]


@pytest.mark.parametrize(("value", "cell"), [
    ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
    ("+1+1", "'+1+1"), ("-2+3", "'-2+3"), ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("a=1", "a=1"), ("", ""),
    (-0.25, "-0.25"), (-3, "-3"), (1e-300, "1e-300"), (0.1 + 0.2, "0.30000000000000004"),
    (None, ""), (True, "true"), (["x:acc:5%", "-y"], "x:acc:5%; -y"), (["-y"], "'-y"),
])
def test_text_cells_never_become_formulas(value: object, cell: str) -> None:
    assert csv_cell(value) == cell


def test_hostile_text_round_trips_as_text() -> None:
    reason = 'target "=cmd|\' /C calc\'!A0", got\n-1,2'
    text = csv_table(["task", "delta", "reason"],
                     [{"task": "-bad", "delta": -0.5, "reason": reason}])
    (row,) = parse_csv(text)
    assert row == {"task": "'-bad", "delta": "-0.5", "reason": reason}


def test_report_without_out_writes_reports_by_input_name(run_cli, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _pair(tmp_path)
    code, _, err = run_cli("compare", a, b, "--resamples", "200", "--out", tmp_path / "cmp.json")
    assert code == 0 or code == 1, err
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = run_cli("report", a)
    assert (code, out) == (0, "wrote reports/a.html\n"), err
    assert "<html" in (work / "reports" / "a.html").read_text()
    code, out, err = run_cli("report", tmp_path / "cmp.json")
    assert (code, out) == (0, "wrote reports/cmp.html\n"), err
    assert sorted(p.name for p in (work / "reports").iterdir()) == ["a.html", "cmp.html"]

    (work / "reports" / "b.html").mkdir()  # what is there is refused, not replaced
    code, out, err = run_cli("report", b)
    assert code == 2 and "--out reports/b.html" in err and "is a folder" in err
