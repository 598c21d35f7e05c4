"""The gate's one rule language and its one resolver: parsing, policy files, suites' gate:
sections, precedence, and rules that select nothing (exit 2 naming where they came from)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import binary_run, flipped_pair
from ftguard.compare import compare
from ftguard.errors import UsageError
from ftguard.gate import (
    DEFAULT_RULES,
    SuiteGate,
    load_policy,
    parse_rule,
    resolve_policy,
    suite_gates_of_run,
)
from ftguard.record import write_run


@pytest.mark.parametrize(("expression", "kind", "select", "metric", "value", "relative"), [
    ("acc:5%", "max-drop", "*", "acc", 0.05, True),
    ("general:headline:0.02", "max-drop", "general", "headline", 0.02, False),
    ("legal/clause_type:accuracy:>=0.70", ">=", "legal/clause_type", "accuracy", 0.7, False),
    ("general:perplexity:<=20", "<=", "general", "perplexity", 20.0, False),
    ("legal:headline:improved", "improved", "legal", "headline", 0.0, False),
    ("general:headline:not-regressed", "not-regressed", "general", "headline", 0.0, False),
    ("general:headline:noninferior(2%)", "noninferior", "general", "headline", 0.02, True),
    ("general:headline:noninferior(0.01)", "noninferior", "general", "headline", 0.01, False),
])
def test_grammar_round_trips(expression: str, kind: str, select: str, metric: str, value: float,
                             relative: bool) -> None:
    rule = parse_rule(expression)
    assert (rule.kind, rule.select, rule.metric, rule.value, rule.relative) == (
        kind, select, metric, pytest.approx(value), relative)
    assert parse_rule(rule.text) == rule  # the canonical spelling parses back to itself
    if expression.count(":") == 2:
        assert rule.text == expression.replace("0.70", "0.7")


@pytest.mark.parametrize("bad", ["acc", "acc:nan%", "acc:5%%", "general:acc:not_regressed",
                                 "acc:>=inf", "a:b:c:d", "legal/t[lang]:acc:5%",
                                 "legal/t[lang=en]x:acc:5%", "legal[a=b][c=d]:acc:5%", ":acc:5%"])
def test_malformed_conditions_are_refused_with_the_grammar(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_rule(bad, "--fail-on")
    assert "--fail-on" in str(info.value)


def test_policy_mappings_use_the_grammar_names(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("alpha: 0.1\nstrict_power: true\nrules:\n"
                    "  - general:headline:noninferior(2%)\n"
                    "  - {select: legal, metric: headline, rule: improved}\n"
                    "  - {select: legal/clause_type, metric: accuracy, rule: '>=', min: 0.7}\n"
                    "  - {select: general, rule: noninferior, margin: 2%}\n"
                    "  - {select: general, rule: max-drop, margin: 0.02}\n"
                    "  - {select: general, rule: 'noninferior(1%)'}\n")
    policy = load_policy(path)
    assert [r.text for r in policy.rules] == [
        "general:headline:noninferior(2%)", "legal:headline:improved",
        "legal/clause_type:accuracy:>=0.7", "general:headline:noninferior(2%)",
        "general:headline:0.02", "general:headline:noninferior(1%)"]
    assert policy.rules[2].origin == f"{path}:6"  # the YAML line of the rule
    assert policy.alpha == 0.1 and policy.strict_power is True


@pytest.mark.parametrize(("rule", "words"), [
    ("{rule: floor}", ["'>='", "not a condition name"]),
    ("{rule: '>='}", ["needs 'min'"]),
    ("{rule: noninferior}", ["needs 'margin'"]),
    ("{rule: no_regression}", ["'not-regressed'"]),
    ("{rule: improved, margin: 2%}", ["takes no 'margin'"]),
    ("{rule: '>=', min: abc}", ["min 'abc' must be a finite number"]),
    ("{rule: floorr}", ["floorr", "is not a gate rule"]),
    ("{select: general}", ["needs 'rule'"]),
    ("{rule: improved, relative: true}", ["unknown key(s) relative"]),
])
def test_bad_policy_rules_name_file_and_line(tmp_path: Path, rule: str, words: list[str]) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(f"# a policy\nrules:\n  - general:acc:5%\n  - {rule}\n")
    with pytest.raises(UsageError) as info:
        load_policy(path)
    text = str(info.value)
    assert f"{path}:4" in text, text
    for word in words:
        assert word in text, text


def test_policy_files_that_gate_nothing_or_are_not_files(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("rules: []\n")
    with pytest.raises(UsageError, match="'rules' is empty"):
        load_policy(tmp_path / "empty.yaml")
    with pytest.raises(UsageError, match="not a regular file"):
        load_policy(tmp_path)
    with pytest.raises(UsageError, match="no such file"):
        load_policy(tmp_path / "missing.yaml")


def _runs(gate: list[object] | None = None):
    base, tuned = flipped_pair(200, 4, 4, seed=3)
    tasks = {("legal", "clause_type"): base, ("general", "reviews"): base}
    a = binary_run("a", tasks)
    b = binary_run("b", {k: tuned for k in tasks})
    if gate is not None:
        b.suites[0].gate = gate
    return a, b


def test_precedence_flags_policy_suites_default(tmp_path: Path) -> None:
    _, b = _runs(gate=["acc:5%"])
    suites = suite_gates_of_run(b)
    own = resolve_policy(suite_gates=suites)
    # legal's own section, and the default for general, which has none
    assert [r.text for r in own.rules] == ["legal:acc:5%", "general:headline:not-regressed"]
    assert own.source == ("the gate: section of suite(s) legal; default (every headline must "
                          "not regress) for general")
    path = tmp_path / "gate.yaml"
    path.write_text("alpha: 0.2\nrules: ['general:acc:not-regressed']\n")
    file = resolve_policy(policy=load_policy(path), suite_gates=suites)
    assert [r.text for r in file.rules] == ["general:acc:not-regressed"] and file.alpha == 0.2
    flags = resolve_policy(fail_on=(parse_rule("*:acc:improved"),), policy=load_policy(path),
                           suite_gates=suites, alpha=0.01)
    assert [r.text for r in flags.rules] == ["*:acc:improved"] and flags.alpha == 0.01
    default = resolve_policy()
    assert default.rules == DEFAULT_RULES
    assert [r.text for r in default.rules] == ["*:headline:not-regressed"]


def test_suite_gate_selectors_are_relative_to_their_suite() -> None:
    gate = SuiteGate("legal", ("clause_type:accuracy:>=0.8", "headline:not-regressed",
                               "*:acc:5%", {"select": "clause_*", "rule": "improved"}))
    assert [r.text for r in gate.rules()] == ["legal/clause_type:accuracy:>=0.8",
                                              "legal:headline:not-regressed", "legal:acc:5%",
                                              "legal/clause_*:headline:improved"]
    for absolute in ("general/reviews:acc:5%", "general:acc:5%"):
        with pytest.raises(UsageError, match="relative to the suite"):
            SuiteGate("legal", (absolute,)).rules()


@pytest.mark.parametrize(("rule", "words"), [
    ("reveiws:headline:not-regressed", ["matches no suite or task", "'general/reviews'"]),
    ("general/reviews:accuracy:5%", ["'accuracy' is not a metric", "they have acc",
                                     "Did you mean 'acc'"]),
    ("generl:acc:5%", ["Did you mean 'general'"]),
    ("legal/clause_typ:acc:5%", ["'legal/clause_type'"]),
])
def test_rules_that_select_nothing_are_exit_2(tmp_path: Path, run_cli, rule: str,
                                              words: list[str]) -> None:
    a, b = _runs()
    write_run(a, tmp_path / "a.json")
    write_run(b, tmp_path / "b.json")
    code, out, err = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json",
                             "--fail-on", rule)
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"--fail-on {rule!r}" in err
    for word in words:
        assert word in err, err


def test_a_suite_gate_that_selects_nothing_names_its_suite_yaml_line(tmp_path: Path,
                                                                      run_cli) -> None:
    suite = tmp_path / "suites" / "legal"
    (suite / "data").mkdir(parents=True)
    (suite / "data" / "t.jsonl").write_text(
        "".join(f'{{"id": "{i}", "q": "Q{i}?", "a": "yes"}}\n' for i in range(6)))
    (suite / "suite.yaml").write_text(
        "name: legal\nversion: '1'\nrole: target\ntasks:\n"
        "  - {name: clause_type, kind: classify, data: data/t.jsonl, prompt: '{{ q }}',\n"
        "     target: '{{ a }}', labels: ['yes', 'no'], metrics: [accuracy]}\n"
        "gate:\n  - clause_type:accuracy:>=0.8\n  - clause_type:acc:5%\n"
        "  - {select: clause_type, rule: floor}\n")
    code, _, err = run_cli("suites", "validate", suite)
    assert code == 2
    assert f"{suite / 'suite.yaml'}:9 [gate[1]]" in err and "'acc' is not a metric" in err
    assert "Did you mean 'accuracy'" in err
    assert f"{suite / 'suite.yaml'}:10 [gate[2]]" in err and "'>='" in err
    assert ":8" not in err.split("gate[1]")[0].splitlines()[-1]  # the good rule is not listed


def test_default_gate_fails_a_target_only_regression(tmp_path: Path, run_cli) -> None:
    """A target suite's regression fails the default gate (it used to pass)."""
    base, tuned = flipped_pair(100, 30, 0, seed=1)
    a = binary_run("a", {("legal", "sentiment"): base})
    b = binary_run("b", {("legal", "sentiment"): tuned})
    comparison = compare(a, b)
    assert not comparison.passed
    assert [o.rule for o in comparison.gate if o.fails] == ["*:headline:not-regressed"]
    assert comparison.rows[0].verdict == "regressed" and comparison.rows[0].failed
    write_run(a, tmp_path / "a.json")
    write_run(b, tmp_path / "b.json")
    code, out, _ = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json")
    assert code == 1 and out.startswith("FAIL")


def test_a_gated_suite_leaves_the_others_under_the_default(tmp_path: Path, run_cli) -> None:
    """A behaviour suite with its own gate: section (safety) does not ungate the suites
    without one: their regressions still fail (it used to pass, on the demo)."""
    base, tuned = flipped_pair(100, 30, 0, seed=1)
    same = flipped_pair(100, 0, 0, seed=2)[0]
    a = binary_run("a", {("general", "json_format"): base, ("safety", "harmful"): same})
    b = binary_run("b", {("general", "json_format"): tuned, ("safety", "harmful"): same})
    b.suites[1].gate = ["harmful:acc:not-regressed"]
    comparison = compare(a, b)
    assert not comparison.passed
    assert [o.rule for o in comparison.gate if o.fails] == ["general:headline:not-regressed"]
    assert [o.rule for o in comparison.gate] == ["safety/harmful:acc:not-regressed",
                                                 "general:headline:not-regressed"]
    write_run(a, tmp_path / "a.json")
    write_run(b, tmp_path / "b.json")
    code, out, _ = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json")
    assert code == 1 and out.startswith("FAIL")
