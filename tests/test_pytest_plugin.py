"""The pytest plugin (``pytest --ftguard``), driven through ``pytester`` on the fake model.

Each test writes a small suite (two ``choice`` tasks of 60 items) into a fresh pytester
folder and runs pytest in-process against it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import write_jsonl

pytest_plugins = ["pytester"]

# The plugin is registered by the pytest11 entry point once ftguard is installed; an
# uninstalled checkout loads it explicitly (doing both would register it twice).
_INSTALLED = any(ep.value == "ftguard.pytest_plugin"
                 for ep in importlib.metadata.entry_points(group="pytest11"))
PLUGIN = () if _INSTALLED else ("-p", "ftguard.pytest_plugin")
FAKE = ("--ftguard", "suites", "--ftguard-model", "fake:0")

SUITE = """\
name: smoke
version: "1"
role: general
tasks:
  - name: clause_type
    kind: choice
    data: data/mc.jsonl
    prompt: "Question: {{ question }}\\nAnswer:"
    choices_field: choices
    target_index: "{{ answer }}"
  - name: doctrine
    kind: choice
    data: data/mc.jsonl
    prompt: "Q: {{ question }}\\nA:"
    choices_field: choices
    target_index: "{{ answer }}"
"""

ROWS = [{"id": f"q{i}", "question": f"Which option is number {i}?",
         "choices": [f"alpha {i}", f"beta {i}", f"gamma {i}", f"delta {i}"], "answer": i % 4}
        for i in range(60)]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester folder holding ``suites/smoke`` (general role, two tasks, 60 items each)."""
    root = pytester.path / "suites" / "smoke"
    write_jsonl(root / "data" / "mc.jsonl", ROWS)
    (root / "suite.yaml").write_text(SUITE, encoding="utf-8")
    return pytester


@pytest.fixture(scope="module", autouse=True)
def _warm_imports(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Import, in this process, everything a gated run imports (numpy, scipy, the engine,
    the report): in-process pytester runs drop the modules they imported, and numpy cannot
    be imported twice in one process."""
    from ftguard.api import evaluate
    from ftguard.compare import compare
    from ftguard.models.load import LoadOptions
    from ftguard.report.render import render_report

    root = tmp_path_factory.mktemp("warm") / "suite"
    write_jsonl(root / "data" / "mc.jsonl", ROWS[:4])
    (root / "suite.yaml").write_text(SUITE, encoding="utf-8")
    record = evaluate([root], load=LoadOptions(model="fake:0"))
    render_report(compare(record, record))
    import ftguard.baseline
    import ftguard.pytest_session  # noqa: F401


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN, *args)


def accept_perfect_baseline(folder: Path) -> None:
    """Accept, into the baseline folder ``folder``, a model that answered every item right.

    Construction: evaluate ``fake:0`` on the suite, then in that RunRecord mark every sample
    of every task correct (``scores["acc"] = scores["acc_norm"] = 1.0``, prediction = target)
    and set every metric's value (and CI) to 1.0, and accept it with
    :func:`ftguard.baseline.accept`. The current ``fake:0`` run gets about a third of the
    items right, so ~40 of 60 items flip correct -> wrong and McNemar's p is ~1e-12: a
    significant regression of the general suite's headline metric (the default policy).
    """
    from ftguard.api import evaluate
    from ftguard.baseline import accept
    from ftguard.models.load import LoadOptions

    record = evaluate([Path("suites")], load=LoadOptions(model="fake:0"))
    for suite in record.suites:
        for task in suite.tasks:
            for sample in task.samples:
                sample.scores.update(acc=1.0, acc_norm=1.0)
                sample.prediction = str(sample.target)
            for metric in task.metrics.values():
                metric.value = metric.ci_low = metric.ci_high = 1.0
    accept(record, folder, name="perfect", force=True)


def test_inert_without_the_flag(project: pytest.Pytester) -> None:
    project.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    result = run(project)
    result.assert_outcomes(passed=1)
    assert "ftguard" not in result.stdout.str().replace("plugins: ftguard", "")
    assert not (project.path / "baselines").exists()
    result = run(project, "suites", "--collect-only", "-q")
    assert "suite.yaml" not in result.stdout.str()
    assert "--ftguard-update-baseline" in run(project, "--help").stdout.str()


def test_missing_baseline_is_skipped_with_the_fix(project: pytest.Pytester) -> None:
    result = run(project, *FAKE, "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines([
        ("*no baseline for suite smoke in baselines: run with --ftguard-update-baseline to "
         "create it*")])


def test_update_baseline_creates_it_and_the_next_run_passes(project: pytest.Pytester) -> None:
    result = run(project, *FAKE, "--ftguard-update-baseline")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*accepted fake:0 as baseline fake-0 in baselines*"])
    index = json.loads((project.path / "baselines" / "index.json").read_text())
    assert [(e["name"], e["model"], list(e["suites"])) for e in index["entries"]] == [
        ("fake-0", "fake:0", ["smoke"])]
    assert (project.path / "baselines" / "fake-0.json").is_file()

    result = run(project, *FAKE, "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "*suites/smoke/suite.yaml::clause_type::acc[[]not-regressed[]] PASSED*",
        "*suites/smoke/suite.yaml::doctrine::acc[[]not-regressed[]] PASSED*",
        "*- ftguard -*",
        "model: fake:0 (fake-0)",
        "baseline: fake-0 = fake:0 (fake-0) from baselines/fake-0.json",
        "task*metric*baseline*current*delta*95% CI*p adj*verdict",
        "smoke/clause_type*acc[*]*+0 *unchanged",
    ])


def test_significant_regression_fails_with_rule_delta_ci_p_and_flips(
        project: pytest.Pytester) -> None:
    accept_perfect_baseline(project.path / "baselines")
    result = run(project, *FAKE)
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*_ ftguard smoke/clause_type acc[[]not-regressed[]] _*",
        ("smoke/clause_type acc regressed significantly: 1 -> 0.* (delta -0.*, 95% CI "
         "[[]-0.*, -0.*[]], p=*e-* adjusted, n=60)"),
        ("gate rule: *:headline:not-regressed (every suite headline: must not regress "
         "significantly) [[]default[]]"),
        "baseline: perfect = fake:0 (fake-0) from baselines/perfect.json",
        "current:  fake:0 (fake-0)",
        "* item(s) went correct -> wrong and 0 wrong -> correct on acc, most decisive first:",
        "  - q*: target '* *', baseline '* *', current '* *'",
    ])
    assert "Traceback" not in out
    result.stdout.fnmatch_lines(["smoke/clause_type*acc[*]*1 *regressed FAIL"])
    result.stdout.fnmatch_lines(["FAILED suites/smoke/suite.yaml::clause_type::acc*"])


def test_dash_k_selects_one_check(project: pytest.Pytester) -> None:
    run(project, *FAKE, "--ftguard-update-baseline")
    result = run(project, *FAKE, "-k", "clause_type", "-v")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*::clause_type::acc[[]not-regressed[]] PASSED*"])
    assert "doctrine" not in result.stdout.str()


def test_junitxml_names_each_check(project: pytest.Pytester) -> None:
    accept_perfect_baseline(project.path / "baselines")
    run(project, *FAKE, "--junitxml=out.xml", "-q")
    cases = ET.parse(project.path / "out.xml").getroot().iter("testcase")
    named = {(c.get("classname"), c.get("name")): c for c in cases}
    assert set(named) == {("suites.smoke.suite.yaml.clause_type", "acc[not-regressed]"),
                          ("suites.smoke.suite.yaml.doctrine", "acc[not-regressed]")}
    case = named["suites.smoke.suite.yaml.clause_type", "acc[not-regressed]"]
    failure = case.find("failure")
    assert failure is not None and "regressed significantly" in failure.get("message", "")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["verdict"] == "regressed" and float(props["base"]) == 1.0
    assert float(props["delta"]) < -0.5 and float(props["p_adjusted"]) < 1e-6


def test_pyproject_settings_are_used_and_flags_win(project: pytest.Pytester) -> None:
    project.makepyprojecttoml("""
        [tool.ftguard]
        model = "fake:0"
        baseline = "gate/accepted"
        limit = 20
        report = "reports/gate.html"
    """)
    result = run(project, "--ftguard", "suites", "--ftguard-update-baseline")
    result.assert_outcomes(passed=2)
    from ftguard.record import read_run

    record = read_run(project.path / "gate" / "accepted" / "fake-0.json")
    assert record.model.spec == "fake:0" and record.config.limit == 20
    result.stdout.fnmatch_lines([("ftguard: warning: the baseline is a partial run (at most 20 "
                                  "items per task (--limit 20)); candidates are gated on "
                                  "its items only")])
    assert [len(t.samples) for t in record.suites[0].tasks] == [20, 20]
    assert (project.path / "reports" / "gate.html").is_file()

    result = run(project, "--ftguard", "suites", "--ftguard-model", "fake:1")
    result.stdout.fnmatch_lines(["model: fake:1 (fake-1)",
                                 "baseline: fake-0 = fake:0 (fake-0) from gate/accepted/*"])


def test_a_served_model_is_gated_from_pyproject_settings(project: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from test_openai_backend import FakeServer

    from ftguard.record import read_run

    monkeypatch.setenv("GATE_KEY", "sk-gate")
    with FakeServer(api_key="sk-gate") as server:
        project.makepyprojecttoml(f"""
            [tool.ftguard]
            backend = "openai"
            base_url = "{server.url}"
            api_key_env = "GATE_KEY"
            max_concurrency = 3
            limit = 10
        """)
        result = run(project, "--ftguard", "suites", "--ftguard-update-baseline")
        result.assert_outcomes(passed=2)
        result = run(project, "--ftguard", "suites")
        result.assert_outcomes(passed=2)
    record = read_run(next((project.path / "baselines").glob("fake-model*.json")))
    assert record.model.backend == "openai" and record.model.spec == "fake-model"
    assert record.config.server_requests["requests"] > 0
    project.makepyprojecttoml('[tool.ftguard]\nbackend = "tgi"\n')
    result = run(project, "--ftguard", "suites")
    assert result.ret != 0 and "use hf or openai" in str(result.stderr)


def test_policy_file_names_the_items_by_rule(project: pytest.Pytester) -> None:
    run(project, *FAKE, "--ftguard-update-baseline")
    (project.path / "gate.yaml").write_text("rules:\n  - 'smoke/doctrine:acc:>=0.9'\n")
    result = run(project, *FAKE, "--ftguard-policy", "gate.yaml", "-v")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*::doctrine::acc[[]>=0.9[]] FAILED*",
                                 "smoke/doctrine acc is 0.*, below the floor 0.9*"])


def test_a_policy_rule_that_selects_nothing_is_a_usage_error(project: pytest.Pytester) -> None:
    """As in ``ftguard compare``: a typo in a rule never passes silently."""
    run(project, *FAKE, "--ftguard-update-baseline")
    (project.path / "gate.yaml").write_text("rules:\n  - 'smoke/doctrine:acc:>=0.5'\n"
                                            "  - 'smoke/doctirne:acc:5%'\n")
    result = run(project, *FAKE, "--ftguard-policy", "gate.yaml")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error: exit 2
    err = str(result.stdout)
    assert "gate.yaml:3: gate rule 'smoke/doctirne:acc:5%'" in err
    assert "matches no suite or task" in err and "Did you mean 'smoke/doctrine'" in err


def test_changed_suite_errors_with_update_hint(project: pytest.Pytester) -> None:
    run(project, *FAKE, "--ftguard-update-baseline")
    write_jsonl(project.path / "suites" / "smoke" / "data" / "mc.jsonl",
                [{**r, "question": r["question"] + " (edited)"} for r in ROWS])
    result = run(project, *FAKE)
    result.assert_outcomes(errors=2)
    out = result.stdout.str()
    assert "is not comparable with this run" in out and "suite smoke differs" in out
    assert "run with --ftguard-update-baseline to accept the current results" in out
    assert "Traceback" not in out


def test_bad_suite_is_a_collection_error_without_traceback(project: pytest.Pytester) -> None:
    bad = project.path / "suites" / "bad"
    bad.mkdir()
    (bad / "suite.yaml").write_text('name: bad\nversion: "1"\nrole: general\ntasks:\n'
                                    "  - name: x\n    kind: choise\n")
    result = run(project, *FAKE)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting suites/bad/suite.yaml*",
                                 ("*suite.yaml:6 [[]tasks[[]0[]].kind[]]: unknown task kind "
                                  "'choise'. Did you mean 'choice'?*")])
    assert "Traceback" not in result.stdout.str()


def test_unknown_model_is_a_usage_error(project: pytest.Pytester) -> None:
    result = run(project, "--ftguard", "suites", "--ftguard-model", "no-such-folder")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([("ERROR: ftguard: --ftguard-model no-such-folder: no such "
                                  "folder*")])
    result = run(project, *FAKE, "--ftguard-limit", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ftguard-limit 0: must be a positive integer*"])


def test_refuses_to_run_inside_an_xdist_worker(project: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    result = run(project, *FAKE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ftguard does not run under pytest-xdist*-n 0*"])


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None,
                    reason="pytest-xdist is not installed")
def test_refuses_dash_n(project: pytest.Pytester) -> None:  # pragma: no cover - needs xdist
    result = run(project, *FAKE, "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ftguard does not run under pytest-xdist*"])


def test_suite_gate_section_decides_the_checks(project: pytest.Pytester) -> None:
    suite = project.path / "suites" / "smoke" / "suite.yaml"
    suite.write_text(SUITE.replace("role: general", "role: target"), encoding="utf-8")
    result = run(project, *FAKE, "-v")  # without gate: every headline is a not-regressed check
    result.stdout.fnmatch_lines(["*::clause_type::acc[[]not-regressed[]] SKIPPED*"])

    suite.write_text(SUITE.replace("role: general", "role: target")
                     + "gate:\n  - 'headline:improved'\n", encoding="utf-8")
    run(project, *FAKE, "--ftguard-update-baseline")
    result = run(project, *FAKE, "-v")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*::clause_type::acc[[]improved[]] FAILED*",
                                 "smoke/clause_type acc did not improve significantly*"])


def test_ftguard_tasks_evaluates_and_gates_only_those_tasks(project: pytest.Pytester) -> None:
    accept_perfect_baseline(project.path / "baselines")  # both tasks regress against it
    result = run(project, *FAKE, "--ftguard-tasks", "doctrine", "-v")
    result.assert_outcomes(failed=1)  # compared with the baseline's doctrine alone
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["*::doctrine::acc[[]not-regressed[]] FAILED*",
                                 "smoke/doctrine*acc[*]*1 *regressed FAIL"])
    assert "clause_type" not in out and "not comparable" not in out

    project.makepyprojecttoml('[tool.ftguard]\ntasks = ["smoke/clause_type"]\n')
    result = run(project, *FAKE, "-v")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*::clause_type::acc[[]not-regressed[]] FAILED*"])
    result = run(project, *FAKE, "--ftguard-tasks", "smoke/*")  # the flag wins
    result.assert_outcomes(failed=2)


def test_ftguard_tasks_naming_no_task_is_a_usage_error(project: pytest.Pytester) -> None:
    result = run(project, *FAKE, "--ftguard-tasks", "doctrine,doctrin")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([("*ftguard: --ftguard-tasks 'doctrin' names no task of the "
                                 "suites being evaluated (tasks: smoke/clause_type, "
                                 "smoke/doctrine)*")])
    project.makepyprojecttoml('[tool.ftguard]\ntasks = "doctrine,"\n')
    result = run(project, *FAKE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([("*[[]tool.ftguard[]] tasks in *pyproject.toml 'doctrine,': "
                                 "an empty task name*")])


def test_a_baseline_is_not_updated_from_some_of_a_suites_tasks(project: pytest.Pytester) -> None:
    result = run(project, *FAKE, "--ftguard-tasks", "doctrine", "--ftguard-update-baseline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([("*--ftguard-update-baseline with --ftguard-tasks "
                                 "(smoke/doctrine): a suite's baseline is replaced whole*")])
    assert not (project.path / "baselines").exists()
    result = run(project, *FAKE, "--ftguard-tasks", "smoke/*", "--ftguard-update-baseline")
    result.assert_outcomes(passed=2)


def test_calibration_checks_fail_on_a_real_calibration_regression(
        project: pytest.Pytester) -> None:
    """Gated ``ece`` (a set metric: the swap test over item rows) and ``brier`` (lower is
    better) are pytest items and fail against a baseline that was perfectly calibrated."""
    from ftguard.api import evaluate
    from ftguard.baseline import accept
    from ftguard.models.load import LoadOptions

    suite = project.path / "suites" / "smoke" / "suite.yaml"
    suite.write_text(SUITE.replace('target_index: "{{ answer }}"\n  - name: doctrine',
                                   'target_index: "{{ answer }}"\n'
                                   '    metrics: [acc, brier, ece]\n  - name: doctrine')
                     + "gate:\n  - 'clause_type:ece:not-regressed'\n"
                       "  - 'clause_type:brier:0.01'\n", encoding="utf-8")
    record = evaluate([Path("suites")], load=LoadOptions(model="fake:0"))
    task = record.suites[0].tasks[0]
    for sample in task.samples:  # sure and right on every item: ECE 0, Brier 0
        sample.scores.update(acc=1.0, brier=0.0)
        sample.stats["ece"] = [1.0, 1.0]
        sample.prediction = str(sample.target)
    for name, value in (("acc", 1.0), ("brier", 0.0), ("ece", 0.0)):
        metric = task.metrics[name]
        metric.value = metric.ci_low = metric.ci_high = value
    accept(record, project.path / "baselines", name="calibrated", force=True)
    result = run(project, *FAKE, "-v")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*::clause_type::ece[[]not-regressed[]] FAILED*"])
    result.stdout.fnmatch_lines(["*::clause_type::brier[[]0.01[]] FAILED*"])
    out = result.stdout.str()
    assert "smoke/clause_type ece regressed significantly: 0 -> 0." in out, out[-3000:]
    assert "smoke/clause_type brier rose (lower is better) by 1." in out
    assert "Traceback" not in out


# -- answer extraction (``extract:``) in the plugin ------------------------------------------

GSM_SUITE = """\
name: gsm
version: "1"
role: target
tasks:
  - name: sums
    kind: generate
    data: data/gsm.jsonl
    prompt: "Question: {{ question }}\\nWork: sum={{ answer }}"
    target_field: answer
    metrics: [exact_match]
    extract: [number]
"""


def test_extracted_answers_are_gated_and_the_failure_shows_the_raw_text(
        pytester: pytest.Pytester) -> None:
    """The fake model echoes the prompt's last word (``sum=N``) for about half the items and
    answers nothing for the rest: extracted, the echoed ones are right. Against a baseline
    that got every item right the other half went correct -> wrong, and the message shows
    each answer with the text it was extracted from."""
    from ftguard.api import evaluate
    from ftguard.baseline import accept
    from ftguard.models.load import LoadOptions

    write_jsonl(pytester.path / "suites" / "gsm" / "data" / "gsm.jsonl",
                [{"id": f"g{i}", "question": f"What is {i} plus {i}?", "answer": str(2 * i)}
                 for i in range(60)])
    (pytester.path / "suites" / "gsm" / "suite.yaml").write_text(GSM_SUITE, encoding="utf-8")
    record = evaluate([Path("suites")], load=LoadOptions(model="fake:0"))
    (task,) = record.suites[0].tasks
    echoed = [s for s in task.samples if s.raw_prediction]
    assert 20 < len(echoed) < 40
    assert all(s.raw_prediction == f"sum={s.target}" and s.prediction == s.target
               and s.scores["exact_match"] == 1.0 for s in echoed)
    assert task.metrics["exact_match"].value == len(echoed) / 60
    for sample in task.samples:  # the baseline: every item right
        sample.scores["exact_match"] = 1.0
        sample.prediction, sample.raw_prediction = str(sample.target), f"sum={sample.target}"
    task.metrics["exact_match"].value = 1.0
    accept(record, pytester.path / "baselines", name="perfect", force=True)

    result = run(pytester, *FAKE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        (f"*{60 - len(echoed)} item(s) went correct -> wrong and 0 wrong -> correct on "
         "exact_match, most decisive first:"),
        "*  - g*: target '*', baseline '*' (from 'sum=*'), current '[[]invalid[]]' (from '')"])


def test_a_sampled_suite_is_gated_on_pass_at_k(pytester: pytest.Pytester) -> None:
    root = pytester.path / "suites" / "samp"
    write_jsonl(root / "data" / "qa.jsonl", [
        {"id": f"q{i}", "words": f"q{i} red paris blue", "answer": "paris"} for i in range(30)])
    (root / "suite.yaml").write_text(
        "name: samp\nversion: 1\nrole: target\ngate: ['pass@2:not-regressed']\ntasks:\n"
        "  - name: qa\n    kind: generate\n    data: data/qa.jsonl\n    prompt: '{{ words }}'\n"
        "    target: '{{ answer }}'\n    generation: {do_sample: true, n: 4, seed: 7}\n"
        "    metrics: [pass@1, pass@2]\n", encoding="utf-8")
    run(pytester, *FAKE, "--ftguard-update-baseline").assert_outcomes(passed=1)
    baseline = json.loads((pytester.path / "baselines" / "fake-0.json").read_text())
    samples = baseline["suites"][0]["tasks"][0]["samples"]
    assert all(len(s["predictions"]) == 4 for s in samples)
    result = run(pytester, *FAKE, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*suites/samp/suite.yaml::qa::pass@2[[]not-regressed[]] PASSED*"])
