"""Property-based tests of the readers: whatever bytes or structures reach suite.yaml, a JSONL
data file, a run record, a ``--policy`` file or a gate rule, ftguard returns, or ends with exit
0, 1 or 2 and a message naming the file, line, key or flag; never another exception (the CLI's
"unexpected ..." fallback), and within bounded time and memory. Example tests pin each class
of failure these properties found."""

from __future__ import annotations

import copy
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO, binary_run
from ftguard.cli.main import main
from ftguard.errors import FtguardError, RecordError, UsageError
from ftguard.gate import load_policy, parse_rule, resolve_policy, rule_from
from ftguard.record import read_run, write_run
from ftguard.suite.jsonl import read_jsonl
from ftguard.suite.yaml_lines import LocatedYAMLError, load_yaml_with_lines

HUNT = int(os.environ.get("FTGUARD_HUNT", "0"))
"""``FTGUARD_HUNT=2000``: that many random examples per property (to hunt locally for new
failures); by default a fixed, reproducible 60."""
PROPERTY = settings(max_examples=HUNT or 60, deadline=5000, derandomize=not HUNT, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# -- strategies ----------------------------------------------------------------------------

DEEP = "__deep__"
"""Stands for a value nested far too deep; replaced in the written text (dumping it from
Python would hit the test's own recursion limit)."""


def _deep(text: str, depth: int = 5000) -> str:
    return text.replace(f'"{DEEP}"', "[" * depth + "]" * depth).replace(
        f"'{DEEP}'", "[" * depth + "]" * depth).replace(DEEP, "[" * depth + "]" * depth)


SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(-10**30, 10**30)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["", "*", "acc", "general", "{{ text }}", "{{", "5%", "data/x.jsonl",
                              "../x", "/etc/passwd", "choice", "generate", "perplexity", DEEP]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
"""Arbitrary JSON-like values (NaN, infinities, huge integers and deep nesting included)."""

YAMLISH = st.text(alphabet="[]{}:,-&*!|>'\"#%?@`\n\t abx01.<\\~", max_size=200)
"""Text made of YAML's punctuation: anchors, aliases, tags, flow and block syntax."""


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with one to three values replaced by arbitrary ones, or keys removed."""
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([p for p in _paths(data) if p]))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(VALUES)
    return data


# -- running the CLI in-process ------------------------------------------------------------


def cli(*args: Any) -> tuple[int, str]:
    """``ftguard ARGS`` in-process: (exit code, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    return code, err.getvalue()


def assert_clean(code: int, err: str, *names: str, codes: tuple[int, ...] = (0, 2)) -> None:
    """Exit ``codes`` only; a failure is one message naming each of ``names``."""
    assert code in codes, (code, err)
    assert "error: unexpected" not in err and "Traceback" not in err, err
    if code == 2:
        assert err.startswith("ftguard: error: ") and len(err) > 30, err
        for name in names:
            assert name in err, (name, err)


def assert_refused_or_returns(call: Any, *names: str) -> Any:
    """``call()`` returns, or raises an FtguardError whose message names ``names``."""
    try:
        return call()
    except FtguardError as exc:
        for name in names:
            assert name in str(exc), (name, str(exc))
        return None


PPL_TASK = {"name": "corpus", "kind": "perplexity", "data": "data/ppl.jsonl",
            "prompt": "{{ text }}"}
SUITE = {"name": "smoke", "version": 1, "role": "general",
         "tasks": [PPL_TASK, {"name": "mc", "kind": "choice", "data": "data/mc.jsonl",
                              "prompt": "Q: {{ question }}", "choices_field": "choices",
                              "target_index": "{{ answer }}", "metrics": ["acc"]}],
         "gate": ["corpus:perplexity:<=100"]}
PPL_ROWS = b'{"id": "p1", "text": "The quick brown fox."}\n{"id": "p2", "text": "Hello."}\n'
MC_ROWS = b'{"id": "q1", "question": "2+2?", "choices": ["4", "5"], "answer": 0}\n'


def write_suite(root: Path, yaml_text: str | bytes, ppl: bytes = PPL_ROWS) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    raw = yaml_text.encode("utf-8") if isinstance(yaml_text, str) else yaml_text
    (root / "suite.yaml").write_bytes(raw)
    (root / "data" / "ppl.jsonl").write_bytes(ppl)
    (root / "data" / "mc.jsonl").write_bytes(MC_ROWS)
    return root


def test_the_unmutated_suite_is_valid(tmp_path: Path) -> None:
    root = write_suite(tmp_path, yaml.safe_dump(SUITE))
    assert cli("suites", "validate", root)[0] == 0


# -- suite.yaml ----------------------------------------------------------------------------


@PROPERTY
@given(raw=st.binary(max_size=300) | YAMLISH.map(str.encode))
def test_suite_yaml_of_any_bytes_is_refused_or_loaded(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_suite(Path(tmp), raw)
        assert_clean(*cli("suites", "validate", root), "suite.yaml")


@PROPERTY
@given(data=mutated(SUITE) | VALUES)
def test_suite_yaml_of_any_structure_is_refused_or_loaded(data: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_suite(Path(tmp), _deep(yaml.safe_dump(data, allow_unicode=True)))
        assert_clean(*cli("suites", "validate", root), str(root))


@PROPERTY
@given(data=mutated(SUITE), anchors=st.integers(1, 4), fanout=st.integers(2, 12))
def test_suite_yaml_with_aliases_is_bounded(data: dict[str, Any], anchors: int,
                                            fanout: int) -> None:
    """Anchors, each a list of ``fanout`` aliases of the previous one, then the suite."""
    bomb = "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fanout)}]\n"
                   for i in range(1, anchors + 1))
    text = "x0: &a0 [v, v, v]\n" + bomb + yaml.safe_dump(data)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_suite(Path(tmp), text)
        start = time.perf_counter()
        assert_clean(*cli("suites", "validate", root), "suite.yaml")
        assert time.perf_counter() - start < 5


# -- JSONL data ----------------------------------------------------------------------------


@PROPERTY
@given(lines=st.lists(st.binary(max_size=40) | st.sampled_from([
    b'{"id": "p9", "text": "ok"}', b"[" * 3000 + b"]" * 3000, b'{"id": NaN, "text": 1e999}',
    b"\xff\xfe", b'{"id": "x", "text": "caf\xe9"}', b"1" * 5000, b"\r", b""]), max_size=6),
       ending=st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_jsonl_of_any_bytes_is_read_line_by_line(lines: list[bytes], ending: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.jsonl"
        path.write_bytes(ending.join(lines))
        rows, problems = read_jsonl(path, "data.jsonl")
        assert rows or problems
        for problem in problems:
            assert problem.file == "data.jsonl" and problem.message
            assert problem.line is None or 1 <= problem.line <= max(len(lines), 1) + sum(
                line.count(b"\r") + line.count(b"\n") for line in lines)
        root = write_suite(Path(tmp) / "suite", yaml.safe_dump(SUITE), ending.join(lines))
        assert_clean(*cli("suites", "validate", root), "ppl.jsonl")


@PROPERTY
@given(rows=st.lists(VALUES, min_size=1, max_size=5))
def test_jsonl_of_any_values_is_refused_or_loaded(rows: list[Any]) -> None:
    text = "".join(_deep(json.dumps(row)) + "\n" for row in rows)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_suite(Path(tmp), yaml.safe_dump(SUITE), text.encode())
        assert_clean(*cli("suites", "validate", root), "ppl.jsonl")


# -- run records ---------------------------------------------------------------------------


def _record(name: str, correct: list[int]) -> dict[str, Any]:
    run = binary_run(name, {("legal", "clauses"): correct, ("general", "mc"): correct[::-1]})
    run.suites[0].tasks[0].samples[0].loglikelihoods = [-math.inf, -1.0]
    run.suites[0].tasks[0].samples[0].gold = 1
    run.config = {"seed": 0, "batch_size": 4}
    run.timings = {"total": 1.5}
    return run.model_dump(mode="json")


BASE = _record("base", [1, 0, 1, 1, 0, 1, 1, 1])
TUNED = _record("tuned", [1, 1, 1, 1, 0, 1, 0, 0])


@PROPERTY
@given(data=mutated(TUNED))
def test_a_mutated_record_is_refused_or_compared(data: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base, tuned = Path(tmp) / "base.json", Path(tmp) / "tuned.json"
        base.write_text(json.dumps(BASE), encoding="utf-8")
        tuned.write_text(_deep(json.dumps(data)), encoding="utf-8")
        run = assert_refused_or_returns(lambda: read_run(tuned), "tuned.json")
        code, err = cli("compare", base, tuned)
        # a readable record may still not pair with the base (a message about both runs)
        assert_clean(code, err, *([] if run else ["tuned.json"]), codes=(0, 1, 2))


@PROPERTY
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode)
       | st.sampled_from([b"NaN", b"[Infinity]", b"[" * 5000, b"1" * 5000, b'"\xff"']))
def test_a_record_of_any_bytes_is_refused(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.json"
        path.write_bytes(raw)
        with pytest.raises(RecordError, match="run.json"):
            read_run(path)
        base = Path(tmp) / "base.json"
        base.write_text(json.dumps(BASE), encoding="utf-8")
        assert_clean(*cli("compare", base, path), "run.json", codes=(2,))


# -- policies and gate rules ---------------------------------------------------------------

CONDITIONS = st.sampled_from(["not-regressed", "improved", "noninferior(2%)", "noninferior(0.01)",
                              "5%", "0.02", ">=0.7", "<=-1", ">=1e400", "noninferior(",
                              "nan%", "1e-3%", ".5", "5.", "5%%", "max-drop", "noninferior"])
NAMES = st.sampled_from(["*", "general", "legal", "legal/*", "legal/clauses", "acc", "headline",
                         "x[a=b]", "", " ", "a b", "ü"]) | st.text(max_size=8)
RULE_TEXTS = (st.tuples(NAMES, NAMES, CONDITIONS | st.text(max_size=8))
              .map(lambda parts: ":".join(parts))
              | st.tuples(NAMES, CONDITIONS).map(lambda parts: ":".join(parts))
              | st.text(max_size=30))
MAPPINGS = st.dictionaries(
    st.sampled_from(["rule", "select", "metric", "margin", "min", "max", "extra"]),
    CONDITIONS | NAMES | SCALARS | VALUES, max_size=4)


@PROPERTY
@given(text=RULE_TEXTS)
def test_any_rule_text_parses_or_names_its_flag(text: str) -> None:
    rule = assert_refused_or_returns(lambda: parse_rule(text, "--fail-on"), "--fail-on")
    if rule is not None:  # the canonical spelling is the rule's identity on every surface
        assert parse_rule(rule.text) == rule and parse_rule(rule.text).text == rule.text


@PROPERTY
@given(item=RULE_TEXTS | MAPPINGS | VALUES)
def test_any_policy_rule_parses_or_names_its_line(item: Any) -> None:
    assert_refused_or_returns(lambda: rule_from(item, "gate.yaml:7"), "gate.yaml:7")


@PROPERTY
@given(raw=st.binary(max_size=300) | YAMLISH.map(str.encode))
def test_a_policy_of_any_bytes_is_refused_naming_the_file(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gate.yaml"
        path.write_bytes(raw)
        with pytest.raises(UsageError, match="gate.yaml"):
            load_policy(path)


@PROPERTY
@given(data=st.fixed_dictionaries({"rules": st.lists(RULE_TEXTS | MAPPINGS, max_size=3)},
                                  optional={"alpha": SCALARS, "correction": SCALARS,
                                            "strict_power": SCALARS,
                                            "allow_unchecked": st.lists(RULE_TEXTS, max_size=2)
                                            | SCALARS}) | VALUES)
def test_a_policy_of_any_structure_is_loaded_or_refused(data: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gate.yaml"
        path.write_text(_deep(yaml.safe_dump(data, allow_unicode=True)), encoding="utf-8")
        policy = assert_refused_or_returns(lambda: load_policy(path), "gate.yaml")
        if policy is not None:
            assert_refused_or_returns(lambda: resolve_policy(policy=policy))
            for rule in policy.rules:
                assert rule.origin.startswith(f"{path}:") and not rule.origin.endswith("?")


@settings(max_examples=15, deadline=5000, derandomize=True, database=None)
@given(rules=st.lists(RULE_TEXTS, min_size=1, max_size=3))
def test_compare_with_any_policy_ends_in_a_verdict_or_a_located_error(rules: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base, tuned, gate = (Path(tmp) / n for n in ("base.json", "tuned.json", "gate.yaml"))
        base.write_text(json.dumps(BASE), encoding="utf-8")
        tuned.write_text(json.dumps(TUNED), encoding="utf-8")
        gate.write_text(yaml.safe_dump({"rules": rules}), encoding="utf-8")
        code, err = cli("compare", base, tuned, "--policy", gate)
        assert_clean(code, err, "gate.yaml", codes=(0, 1, 2))
        assert "--fail-on" not in err


# -- examples: each class of failure found -------------------------------------------------

BOMB = "".join(["a0: &a0 [x, x, x, x, x, x, x, x, x]\n"] + [
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)])
"""A "billion laughs": 400 bytes that expand to 9**10 values."""


def _suite_error(root: Path) -> str:
    start = time.perf_counter()
    code, err = cli("suites", "validate", root)
    assert time.perf_counter() - start < 10
    assert_clean(code, err, codes=(2,))
    return err


def test_an_alias_bomb_is_refused_at_the_line_it_explodes(tmp_path: Path) -> None:
    err = _suite_error(write_suite(tmp_path, BOMB + yaml.safe_dump(SUITE)))
    assert "suite.yaml:6: aliases expand this value to 597,871 values" in err
    assert "fewer aliases" in err


def test_a_merge_key_bomb_and_an_alias_chain_are_refused(tmp_path: Path) -> None:
    merges = "m0: &m0 {a: 1, b: 2}\n" + "".join(
        f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 8)}], k{i}: 1}}\n" for i in range(1, 9))
    err = _suite_error(write_suite(tmp_path / "merge", merges + yaml.safe_dump(SUITE)))
    assert "aliases expand" in err
    chain = "c0: &c0 [x]\n" + "".join(f"c{i}: &c{i} [*c{i - 1}]\n" for i in range(1, 300))
    err = _suite_error(write_suite(tmp_path / "chain", chain + yaml.safe_dump(SUITE)))
    assert "suite.yaml:100: values are nested more than 100 levels deep" in err


def test_a_recursive_anchor_is_refused(tmp_path: Path) -> None:
    err = _suite_error(write_suite(tmp_path, "loop: &l [*l]\n" + yaml.safe_dump(SUITE)))
    assert "suite.yaml:1:" in err and "used inside its own value" in err
    mapping = "loop: &l {self: *l}\n" + yaml.safe_dump(SUITE)
    assert "suite.yaml:1:" in _suite_error(write_suite(tmp_path / "map", mapping))


def test_deep_nesting_in_suite_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    text = yaml.safe_dump(SUITE) + "extra: " + "[" * 50_000 + "]" * 50_000 + "\n"
    err = _suite_error(write_suite(tmp_path, text))
    assert f"suite.yaml:{text.count(chr(10))}: values are nested more than 100" in err


@pytest.mark.parametrize(("value", "words"), [
    ("!!int abc", "cannot read int value abc"),
    ("!!bool maybe", "cannot read bool value maybe"),
    ("1" * 5000, "cannot read int value"),
    ("!!binary aGVsbG8=", "the YAML tag !!binary is not supported"),
    ("!!set {a, b}", "the YAML tag !!set is not supported"),
    ("!!python/object:os.system ls", "could not determine a constructor"),
])
def test_yaml_values_that_are_not_plain_data_are_refused_with_their_line(
        tmp_path: Path, value: str, words: str) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(f"name: x\nversion: {value}\n", encoding="utf-8")
    with pytest.raises(LocatedYAMLError) as info:
        load_yaml_with_lines(path)
    assert f"suite.yaml:2: YAML error: {words}" in str(info.value)


def test_yaml_timestamps_stay_the_text_written(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text("version: 2024-01-31\ntasks: [a]\n", "utf-8")
    assert load_yaml_with_lines(path)[0] == {"version": "2024-01-31", "tasks": ["a"]}


def test_an_aliased_list_item_is_located_at_the_alias(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text("a: &t {name: x}\ntasks:\n  - *t\n  - *t\n", encoding="utf-8")
    data, lines = load_yaml_with_lines(path)
    assert data["tasks"] == [{"name": "x"}, {"name": "x"}]
    assert (lines[("tasks", 0)], lines[("tasks", 1)], lines[("a", "name")]) == (3, 4, 1)


def test_non_utf8_and_control_bytes_in_yaml_name_their_line(tmp_path: Path) -> None:
    text = yaml.safe_dump(SUITE).encode()
    err = _suite_error(write_suite(tmp_path / "a", text.replace(b"smoke", b"sm\xffoke")))
    line = text[: text.index(b"smoke")].count(b"\n") + 1
    assert f"suite.yaml:{line}: is not UTF-8 text" in err
    err = _suite_error(write_suite(tmp_path / "b", text.replace(b"smoke", b"sm\x00oke")))
    assert f"suite.yaml:{line}: holds the character U+0000" in err


def test_a_suite_yaml_that_is_not_a_file_or_too_large_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * (10 * 2**20) + b"\n")
    with pytest.raises(LocatedYAMLError, match="big.yaml: is 10 MiB"):
        load_yaml_with_lines(path)
    os.mkfifo(tmp_path / "fifo.yaml")
    with pytest.raises(LocatedYAMLError, match="fifo.yaml: is not a regular file"):
        load_yaml_with_lines(tmp_path / "fifo.yaml")


def test_jsonl_non_utf8_deep_and_huge_lines_are_each_named(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"id": "1", "text": "fine"}\n'
                     b'{"id": "2", "text": "caf\xe9"}\n'
                     + b"[" * 100_000 + b"]" * 100_000 + b"\n"
                     + b'{"id": "4", "x": ' + b"[" * 200 + b"]" * 200 + b"}\n"
                     + b'{"id": ' + b"1" * 5000 + b"}\r\n"
                     + b'{"id": "6", "text": oops}\r'
                     + b'{"id": "7", "text": "fine"}\n')
    rows, problems = read_jsonl(path, "data.jsonl")
    assert [r.line for r in rows] == [1, 7]
    assert [(p.line, p.message.split(" (")[0].split(";")[0]) for p in problems] == [
        (2, "is not UTF-8 text"),
        (3, "is nested deeper than Python's JSON reader allows"),
        (4, "is nested more than 100 levels deep"),
        (5, "is not valid JSON"),
        (6, "is not valid JSON")]


def test_jsonl_problems_are_capped_per_file(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes("\n".join(["oops"] * 1000).encode("utf-16"))
    rows, problems = read_jsonl(path, "data.jsonl")
    assert not rows and len(problems) == 21
    assert problems[-1].message.startswith("980 more line(s) have problems")


def test_jsonl_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "1"}\n')
    assert read_jsonl(path)[0][0].fields == {"id": "1"}


def _write_records(tmp_path: Path, edit: Any = None, raw: str | None = None) -> tuple[Path, Path]:
    base, tuned = tmp_path / "base.json", tmp_path / "tuned.json"
    base.write_text(json.dumps(BASE, indent=1), encoding="utf-8")
    data = copy.deepcopy(TUNED)
    if edit:
        edit(data)
    tuned.write_text(raw if raw is not None else json.dumps(data, indent=1), encoding="utf-8")
    return base, tuned


def _record_error(base: Path, tuned: Path) -> str:
    with pytest.raises(RecordError) as info:
        read_run(tuned)
    code, err = cli("compare", base, tuned)
    assert_clean(code, err, tuned.name, codes=(2,))
    return str(info.value)


def _line_of(path: Path, needle: str) -> int:
    text = path.read_text(encoding="utf-8")
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize(("edit", "needle", "words"), [
    (lambda d: d["suites"][1]["tasks"][0]["metrics"]["acc"].update(value=math.nan), "NaN",
     "general/mc: non-finite value NaN of metrics.acc.value"),
    (lambda d: d["suites"][0]["tasks"][0]["samples"][2]["scores"].update(acc=-math.inf),
     '"acc": -Infinity', "legal/clauses: item 'clauses-2': non-finite value -Infinity of scores.acc"),
    (lambda d: d["timings"].update(total=math.inf), '"total": Infinity',
     "non-finite value Infinity of timings.total"),
    (lambda d: d["config"].update(seed=[1, {"x": math.nan}]), "NaN",
     "non-finite value NaN of config.seed[1].x"),
])
def test_nan_and_infinity_literals_are_refused_with_line_and_item(
        tmp_path: Path, edit: Any, needle: str, words: str) -> None:
    base, tuned = _write_records(tmp_path, edit)
    message = _record_error(base, tuned)
    assert f"tuned.json:{_line_of(tuned, needle)}: {words}" in message, message


def test_overflowing_numbers_are_refused_naming_the_metric(tmp_path: Path) -> None:
    raw = json.dumps(TUNED).replace('"value": 0.625', '"value": 1e999', 1)
    assert "1e999" in raw
    message = _record_error(*_write_records(tmp_path, raw=raw))
    assert "legal/clauses: metric 'acc' has a non-finite (NaN or infinite) value" in message


def test_minus_infinity_log_likelihoods_round_trip(tmp_path: Path) -> None:
    run = read_run(_write_records(tmp_path)[1])
    assert run.suites[0].tasks[0].samples[0].loglikelihoods == [-math.inf, -1.0]
    write_run(run, tmp_path / "again.json")
    assert read_run(tmp_path / "again.json") == run
    run.suites[0].tasks[0].samples[0].loglikelihoods = [math.nan, -1.0]
    with pytest.raises(RecordError, match="'clauses-0' has a non-finite .* loglikelihoods"):
        write_run(run, tmp_path / "bad.json")


@pytest.mark.parametrize(("raw", "words"), [
    ("[" * 100_000 + "]" * 100_000, "tuned.json:1: not valid JSON (nested deeper than"),
    ('{\n"a": 1,\n"b": ' + "[" * 100_000 + "]" * 100_000 + "}", "tuned.json:3: not valid JSON"),
    ('{"schema_version": ' + "1" * 5000 + "}", "tuned.json: not valid JSON (Exceeds the limit"),
])
def test_deep_or_huge_record_json_is_refused(tmp_path: Path, raw: str, words: str) -> None:
    base, tuned = _write_records(tmp_path, raw=raw)
    assert words in _record_error(base, tuned)


def test_free_form_settings_nested_too_deep_are_refused(tmp_path: Path) -> None:
    deep = json.dumps(TUNED).replace('"config": {', '"config": {"deep": '
                                     + "[" * 500 + "]" * 500 + ", ", 1)
    message = _record_error(*_write_records(tmp_path, raw=deep))
    assert "tuned.json: config.deep" in message and "nested more than 100 levels" in message


def test_a_record_with_a_non_utf8_byte_names_its_line(tmp_path: Path) -> None:
    base, tuned = _write_records(tmp_path)
    line = _line_of(tuned, "tuned")
    tuned.write_bytes(tuned.read_bytes().replace(b"tuned", b"tun\xffed", 1))
    assert f"tuned.json:{line}: is not UTF-8 text" in _record_error(base, tuned)


def test_a_record_that_is_not_a_list_of_suites_is_refused(tmp_path: Path) -> None:
    for suites in (5, "abc", {"a": 1}, [5, None, {"tasks": 3}, {"tasks": [{"samples": 1}]}]):
        def edit(d: dict[str, Any], suites: Any = suites) -> None:
            d["suites"] = suites
        assert "tuned.json" in _record_error(*_write_records(tmp_path, edit))


def test_a_record_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    base, _ = _write_records(tmp_path)
    os.mkfifo(tmp_path / "fifo.json")
    assert "not a regular file" in _record_error(base, tmp_path / "fifo.json")


@pytest.mark.parametrize("content", [bytes(range(256)), b"\x00\x00\x00", b"rules: [\xff]\n",
                                     b"- a\n- b\n", b"42\n", b"rules: 5\n", b"rules: [5, null]\n",
                                     b"rules: [[acc:5%]]\n", b"rules:\n  - acc:5%\nalpha: .nan\n"])
def test_a_binary_or_malformed_policy_is_a_usage_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "gate.yaml"
    path.write_bytes(content)
    base, tuned = _write_records(tmp_path)
    code, err = cli("compare", base, tuned, "--policy", path)
    assert_clean(code, err, "gate.yaml", codes=(2,))


def test_a_policy_folder_is_a_usage_error_naming_the_flag(tmp_path: Path) -> None:
    (tmp_path / "gate.yaml").mkdir()
    base, tuned = _write_records(tmp_path)
    code, err = cli("compare", base, tuned, "--policy", tmp_path / "gate.yaml")
    assert_clean(code, err, "--policy", "gate.yaml: not a regular file", codes=(2,))


@pytest.mark.parametrize(("line", "words"), [
    ("  - acc:bogus%", "gate.yaml:3: gate rule 'acc:bogus%' is not a gate rule"),
    ("  - {rule: 'bogus%'}", "gate.yaml:3: rule 'bogus%' is not a gate rule condition"),
    ("  - {rule: not-regressed, select: [1, 2]}", "gate.yaml:3: select must be a suite"),
    ("  - {rule: not-regressed, select: 'a:b'}", "gate.yaml:3: select 'a:b' must be"),
    ("  - {rule: not-regressed, select: 'legal[x=y]'}",  # a slice the runs do not have
     "gate.yaml:3: gate rule 'legal[x=y]:headline:not-regressed'"),
    ("  - {rule: noninferior, margin: -0.02}", "gate.yaml:3: margin -0.02 must be a finite"),
    ("  - {rule: '>=', min: [1]}", "gate.yaml:3: min [1] must be a finite number"),
    ("  - 7", "gate.yaml:3: a gate rule is a string"),
    ("  - legl:acc:not-regressed", "gate.yaml:3: gate rule 'legl:acc:not-regressed': selector"),
    ("allow_unchecked:\n  - acc:5%", "gate.yaml:4: allow_unchecked 'acc:5%' is not a rule"),
])
def test_a_bad_policy_rule_is_reported_at_its_file_and_line(tmp_path: Path, line: str,
                                                           words: str) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(f"rules:\n  - general:headline:not-regressed\n{line}\n", encoding="utf-8")
    base, tuned = _write_records(tmp_path)
    code, err = cli("compare", base, tuned, "--policy", path)
    assert_clean(code, err, codes=(2,))
    assert words in err and "--fail-on" not in err and "--allow-unchecked" not in err, err


def test_allow_unchecked_from_a_policy_file_applies_to_its_rules(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("rules: [legal:acc:5%]\nallow_unchecked: [legal:acc:5%]\n", "utf-8")
    policy = resolve_policy(policy=load_policy(path))
    assert policy.allow_unchecked == ("legal:acc:5%",)
    flags = resolve_policy(fail_on=[parse_rule("general:acc:5%")], policy=load_policy(path))
    assert flags.allow_unchecked == ()  # the file's rules are replaced, so is what it allows


def test_long_rules_are_refused_quickly() -> None:
    start = time.perf_counter()
    for text in ("acc:" + "1" * 100_000 + "x", "acc:noninferior(" + "1" * 400 + "x)",
                 "a:b:" + "9" * 450 + "%x"):
        with pytest.raises(UsageError, match="--fail-on"):
            parse_rule(text)
    assert time.perf_counter() - start < 1


MEMORY_CHILD = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
    from ftguard.cli.main import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("case", ["bomb", "deep"])
def test_hostile_inputs_stay_within_2_gib(tmp_path: Path, case: str) -> None:
    """In a child limited to 2 GiB of address space: the alias bomb as a suite and as a
    policy, and a record of 100,000 nested brackets."""
    base, tuned = _write_records(tmp_path)
    if case == "bomb":
        root = write_suite(tmp_path / "suite", BOMB + yaml.safe_dump(SUITE))
        policy = tmp_path / "gate.yaml"
        policy.write_text(BOMB + "rules: [general:headline:not-regressed]\n", "utf-8")
        commands = [["suites", "validate", root], ["compare", base, tuned, "--policy", policy]]
    else:
        tuned.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
        commands = [["compare", base, tuned]]
    for command in commands:
        done = subprocess.run([sys.executable, "-c", MEMORY_CHILD, *map(str, command)],
                              capture_output=True, text=True, timeout=60, cwd=REPO,
                              check=False)
        assert done.returncode == 2, done.stderr
        assert "error: unexpected" not in done.stderr and "Traceback" not in done.stderr, done.stderr
