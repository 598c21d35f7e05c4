"""The error catalogue: every bad input of tests/catalogue/ ends in a clear exit 2 (1 only for
a failed gate), with no traceback and no "unexpected" error, naming the file, line, key or
flag at fault, and with nothing written, replaced or left behind.

The pytest plugin's bad inputs run at the end through ``pytester``.
"""

from __future__ import annotations

import collections
import importlib.metadata
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from catalogue import Bad, Case, Ctx, load_all

from conftest import REPO, suite_yaml, write_jsonl

pytest_plugins = ["pytester"]

CASES = load_all()
COMMANDS = ("eval", "suites validate", "compare", "gate", "report", "baseline accept",
            "baseline show", "train", "merge", "merge-adapter", "check-leakage",
            "import-lmeval", "power")


def test_the_catalogue_covers_every_command() -> None:
    counts = collections.Counter(c.command for c in CASES)
    assert set(counts) == set(COMMANDS), set(COMMANDS) ^ set(counts)
    assert len(CASES) + len(PLUGIN_CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES), "two cases share a title"


def _tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry below ``root``: kind, size and modification time (FIFOs are not opened)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            st = path.lstat()
            out[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_size,
                                                st.st_mtime_ns)
    return out


def _run(bad: Bad, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    args = [str(a) for a in bad.args]
    if bad.subprocess:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        try:
            done = subprocess.run([sys.executable, "-m", "ftguard", *args], check=False, capture_output=True,
                                  text=True, timeout=120, env=env)
        except subprocess.TimeoutExpired:
            pytest.fail(f"ftguard {' '.join(args)} hung (killed after 120 s)")
        return done.returncode, done.stdout, done.stderr
    from ftguard.cli.main import main

    try:
        code = main(args)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, tiny_model: Path,
                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = case.build(Ctx(tmp_path, tiny_model))
    capsys.readouterr()
    before = _tree(tmp_path)
    code, out, err = _run(bad, capsys)
    said = err if bad.code == 2 else out + err
    assert code == bad.code, f"exit {code}, expected {bad.code}\nstdout:\n{out}\nstderr:\n{err}"
    assert "Traceback" not in err and "error: unexpected" not in err, err
    assert "error:" in err or bad.code != 2, err
    for name in bad.names:
        assert str(name) in said, f"{name!r} is not named in:\n{said}"
    repeated = [line for line, n in collections.Counter(err.splitlines()).items()
                if n > 1 and line.strip()]
    assert not repeated, f"the message repeats itself: {repeated}"
    after = _tree(tmp_path)
    written = {k for k in after.keys() | before.keys() if after.get(k) != before.get(k)}
    assert not written, f"written, replaced or left behind: {sorted(written)}"


# -- the pytest plugin ----------------------------------------------------------------------

_INSTALLED = any(ep.value == "ftguard.pytest_plugin"
                 for ep in importlib.metadata.entry_points(group="pytest11"))
PLUGIN = () if _INSTALLED else ("-p", "ftguard.pytest_plugin")


def _project(p: pytest.Pytester) -> None:
    rows = [{"id": f"q{i}", "question": f"Number {i}?", "choices": [f"a{i}", f"b{i}"],
             "answer": i % 2} for i in range(20)]
    write_jsonl(p.path / "suites" / "smoke" / "data" / "mc.jsonl", rows)
    (p.path / "suites" / "smoke" / "suite.yaml").write_text(suite_yaml("smoke"), encoding="utf-8")


def _write(name: str, data: str | bytes) -> Any:
    def setup(p: pytest.Pytester) -> None:
        target = p.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            target.write_text(data, encoding="utf-8")
    return setup


PLUGIN_CASES: list[tuple[str, Any, tuple[str, ...], tuple[str, ...]]] = [
    ("no suite under the path", _write("empty/.keep", ""), ("empty",), ("empty",)),
    ("--ftguard-baseline of garbage", _write("base.json", "{oops"),
     ("suites", "--ftguard-baseline", "base.json"), ("base.json",)),
    ("--ftguard-policy of binary bytes", _write("gate.yaml", bytes(range(256))),
     ("suites", "--ftguard-policy", "gate.yaml"), ("gate.yaml",)),
    ("--ftguard-policy with a bad rule", _write("gate.yaml", "rules:\n  - acc:bogus\n"),
     ("suites", "--ftguard-policy", "gate.yaml"), ("gate.yaml:2",)),
    ("[tool.ftguard] limit of the wrong type",
     _write("pyproject.toml", "[tool.ftguard]\nlimit = 'ten'\n"), ("suites",),
     ("[tool.ftguard]", "limit")),
    ("pyproject.toml that is not TOML", _write("pyproject.toml", "[tool.ftguard\n"),
     ("suites",), ("pyproject.toml",)),
    ("--ftguard-report is a folder", _write("report.html/.keep", ""),
     ("suites", "--ftguard-report", "report.html"), ("--ftguard-report", "report.html")),
    ("--ftguard-limit 0", _write(".keep", ""), ("suites", "--ftguard-limit", "0"),
     ("--ftguard-limit",)),
    ("a suite with a non-UTF-8 data line",
     _write("suites/smoke/data/mc.jsonl", b'{"id": "q0", "question": "\xff"}\n'), ("suites",),
     ("mc.jsonl:1",)),
]


@pytest.fixture(scope="module")
def _warm_imports() -> None:
    """In-process pytester runs drop the modules they import; numpy cannot be imported twice."""
    import ftguard.api
    import ftguard.baseline
    import ftguard.compare
    import ftguard.pytest_session
    import ftguard.report.render  # noqa: F401


@pytest.mark.parametrize(("title", "setup", "args", "names"), PLUGIN_CASES,
                         ids=[c[0] for c in PLUGIN_CASES])
def test_bad_input_to_the_pytest_plugin(title: str, setup: Any, args: tuple[str, ...],
                                        names: tuple[str, ...], pytester: pytest.Pytester,
                                        _warm_imports: None) -> None:
    _project(pytester)
    setup(pytester)
    before = _tree(pytester.path)
    result = pytester.runpytest(*PLUGIN, "--ftguard", "--ftguard-model", "fake:0", *args)
    text = result.stdout.str() + result.stderr.str()
    assert result.ret in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.USAGE_ERROR), text
    assert "Traceback" not in text and "INTERNALERROR" not in text
    assert "error: unexpected" not in text
    for name in names:
        assert name in text, f"{name!r} is not named in:\n{text}"
    after = _tree(pytester.path)
    written = {k for k in after.keys() | before.keys()
               if after.get(k) != before.get(k) and not k.startswith(".pytest_cache")}
    assert not written, f"written, replaced or left behind: {sorted(written)}"
