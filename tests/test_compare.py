"""`ftguard compare`: paired rows, the gate's exit codes, refusal of incomparable runs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from conftest import binary_run, flipped_pair
from ftguard.compare import IncomparableRunsError, compare
from ftguard.gate import DEFAULT_RULES, Policy, parse_rule
from ftguard.record import (
    write_run,
)


def test_a_real_regression_fails_the_default_gate(tmp_path: Path, run_cli) -> None:
    base, tuned = flipped_pair()
    legal_base, legal_tuned = flipped_pair(200, 5, 40, seed=1)
    a = binary_run("base", {("general", "knowledge"): base, ("legal", "clauses"): legal_base})
    b = binary_run("tuned", {("general", "knowledge"): tuned, ("legal", "clauses"): legal_tuned})
    result = compare(a, b)
    rows = {(r.suite, r.task): r for r in result.rows}
    general = rows[("general", "knowledge")]
    assert general.delta == pytest.approx(-0.03) and general.method == "mcnemar-exact"
    assert general.verdict == "regressed" and general.gated and general.reason
    legal = rows[("legal", "clauses")]  # gated too (every headline), Holm within its role
    assert legal.verdict == "improved" and legal.gated and not legal.failed
    assert legal.p_adjusted == legal.p_value and general.p_adjusted == general.p_value
    assert not result.passed and "regressed significantly" in result.failures[0]
    assert result.alignment_tax and result.alignment_tax.value < 0 < result.gain.value  # type: ignore[union-attr]
    assert result.flips[0].direction == "correct_to_wrong"
    assert sum(f.direction == "correct_to_wrong" for f in result.flips) == 45  # 40 + 5
    write_run(a, tmp_path / "a.json")
    write_run(b, tmp_path / "b.json")
    code, out, _ = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json",
                           "--out", tmp_path / "cmp.json")
    assert code == 1 and out.startswith("FAIL") and "regressed" in out
    assert json.loads((tmp_path / "cmp.json").read_text())["passed"] is False
    code, out, _ = run_cli("compare", tmp_path / "a.json", tmp_path / "a.json")
    assert code == 0 and out.startswith("PASS")


def test_same_change_unpaired_would_miss_is_caught() -> None:
    base, tuned = flipped_pair(1000, 25, 8, seed=3)  # 1.7 points net loss, highly correlated runs
    row = compare(binary_run("a", {("general", "t"): base}), binary_run("b", {("general", "t"): tuned})).rows[0]
    se = np.sqrt(base.mean() * (1 - base.mean()) / 1000 + tuned.mean() * (1 - tuned.mean()) / 1000)
    from scipy.stats import norm

    unpaired_p = 2 * norm.sf(abs(base.mean() - tuned.mean()) / se)
    assert row.p_value < 0.05 < unpaired_p


def test_incomparable_runs_are_refused_unless_allowed(run_cli, tmp_path: Path) -> None:
    base, tuned = flipped_pair(100, 3, 3)
    a = binary_run("a", {("general", "t"): base})
    b = binary_run("b", {("general", "t"): tuned[:80]}, hash_suffix="-changed")
    with pytest.raises(IncomparableRunsError) as info:
        compare(a, b)
    text = str(info.value)
    assert "content hash" in text and "20 item(s) only in base" in text
    result = compare(a, b, allow_mismatch=True)
    assert result.rows[0].n == 80 and "shared items only" in result.notes[0]
    write_run(a, tmp_path / "a.json")
    write_run(b, tmp_path / "b.json")
    code, _, err = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json")
    assert code == 2 and "--allow-mismatch" in err and "Traceback" not in err


def test_rules_judge_direction_and_confidence() -> None:
    base, tuned = flipped_pair(1000, 12, 10, seed=5)  # 0.2 point drop, not significant
    result_args = (binary_run("a", {("general", "t"): base}), binary_run("b", {("general", "t"): tuned}))
    row = compare(*result_args).rows[0]
    assert row.verdict == "unchanged" and row.ci_low < -0.005
    loose = Policy(rules=(parse_rule("general:acc:noninferior(0.02)"),))
    strict = Policy(rules=(parse_rule("general:acc:noninferior(0.001)"),))
    assert compare(*result_args, loose).passed and not compare(*result_args, strict).passed
    assert compare(*result_args, Policy(rules=(parse_rule("acc:1%"),))).passed
    assert not compare(*result_args, Policy(rules=(parse_rule("acc:0.1%"),))).passed
    assert not compare(*result_args, Policy(rules=(parse_rule("general:acc:improved"),))).passed


def test_junit_and_markdown_outputs(tmp_path: Path, run_cli) -> None:
    base, tuned = flipped_pair()
    write_run(binary_run("a", {("general", "t"): base}), tmp_path / "a.json")
    write_run(binary_run("b", {("general", "t"): tuned}), tmp_path / "b.json")
    code, out, _ = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json", "--format", "junit")
    suite = ET.fromstring(out)
    assert code == 1 and suite.get("failures") == "1"
    assert suite.find("testcase/failure").get("message").startswith("general/t acc regressed")  # type: ignore[union-attr]
    code, out, _ = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json", "--format", "markdown")
    assert "| suite | task | metric |" in out and out.startswith("## ❌ FAIL")


def test_suite_gate_sections_policy_files_and_no_torch(tmp_path: Path, run_cli) -> None:
    base, tuned = flipped_pair(1000, 12, 10, seed=5)  # a small, non-significant drop
    a = binary_run("a", {("general", "t"): base})
    b = binary_run("b", {("general", "t"): tuned})
    b.suites[0].gate = ["acc:0.1%"]  # the suite's own rule: may not drop more than 0.1%
    write_run(a, tmp_path / "a.json")
    write_run(b, tmp_path / "b.json")
    code, out, _ = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json")
    assert code == 1 and "FAIL general:acc:0.1%" in out and "dropped by" in out
    (tmp_path / "gate.yaml").write_text(
        "alpha: 0.05\nrules:\n  - general:acc:not-regressed\n"
        "  - {select: general, metric: acc, rule: '>=', min: 0.5}\n")
    code, out, _ = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json",
                           "--policy", tmp_path / "gate.yaml")
    assert code == 0 and out.startswith("PASS")
    (tmp_path / "bad.yaml").write_text("rules:\n  - {select: general, rule: floorr}\n")
    code, _, err = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json",
                           "--policy", tmp_path / "bad.yaml")
    assert code == 2 and f"{tmp_path / 'bad.yaml'}:2" in err and "floorr" in err
    import subprocess
    import sys

    probe = ("import sys; from ftguard.cli.main import main; rc = main(sys.argv[1:]);"
             "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", probe, "compare", str(tmp_path / "a.json"),
                           str(tmp_path / "a.json")], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_secondary_metrics_do_not_dilute_a_headline() -> None:
    """Holm runs within families: a task's 20 unchanged secondary metrics leave the p-value
    of its headline alone; the secondary rows are corrected among themselves."""
    base_c, tuned_c = flipped_pair(n=200, right_to_wrong=4, wrong_to_right=20)
    runs = []
    for spec, correct in (("base", base_c), ("tuned", tuned_c)):
        run = binary_run(spec, {("legal", "clauses"): correct, ("legal", "terms"): correct})
        task = run.suites[0].tasks[0]
        for i in range(20):
            task.metrics[f"extra{i}"] = task.metrics["acc"].model_copy()
            for sample in task.samples:
                sample.scores[f"extra{i}"] = float(sample.id.endswith("7"))  # unchanged
        runs.append(run)
    comparison = compare(*runs, Policy(DEFAULT_RULES))
    rows = {(r.task, r.metric): r for r in comparison.rows}
    headline = rows[("clauses", "acc")]
    assert headline.headline and headline.verdict == "improved"
    assert headline.p_adjusted == pytest.approx(min(1.0, 2 * headline.p_value))  # 2 headlines
    extra = rows[("clauses", "extra0")]
    assert not extra.headline and extra.p_adjusted == 1.0 and extra.verdict == "unchanged"
