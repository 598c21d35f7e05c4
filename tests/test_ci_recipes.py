"""The CI recipes work in a user's own repository (examples/github-actions, examples/gitlab).

The scripts of the workflow's ``run:`` steps and of the GitLab jobs' ``script`` lines are
extracted with pyyaml and run with bash, as the runners would, in a temporary git
repository that is not ftguard's checkout: a user's project with its own pyproject.toml, one
suite of its own and no ftguard sources. ftguard comes from the built wheel installed into a
fresh venv (tests/wheel_env.py) whose bin/ is first on PATH. The one thing not run is the
recipes' install step (``pip install`` of CPU torch and ``$FTGUARD_PACKAGE``): it needs the
network; the test checks what it installs instead.

The fake model stands in for the candidate. On the user's suite (120 two-way questions)
``fake:44`` answers 72 right and ``fake:55`` 51, with 3.8 times as many right-to-wrong flips
as the reverse (exact McNemar p = 0.004): a real, significant regression.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO

WORKFLOW = REPO / "examples" / "github-actions" / "ftguard-gate.yml"
GITLAB = REPO / "examples" / "gitlab" / "ftguard-gate.gitlab-ci.yml"
BASE, REGRESSED = "fake:44", "fake:55"

SUITE_YAML = """\
name: faq
version: 1
role: target
tasks:
  - name: answers
    kind: choice
    data: data/answers.jsonl
    prompt: "Customer: {{ question }}\\nAgent:"
    choices_field: choices
    target_index: "{{ answer }}"
"""


def _rows() -> list[dict[str, Any]]:
    return [{"id": f"q{i}", "question": f"Is order {1000 + i} eligible for a refund?",
             "choices": ["yes, within 30 days", "no, past the window"], "answer": i % 2}
            for i in range(120)]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=user", "-c", "user.email=user@example.com",
                           "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
                          cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def _user_repo(tmp_path: Path, suites: str) -> Path:
    """A user's project (not ftguard) with its suite at ``suites/faq``, pushed to a bare
    ``origin`` so the baseline job can push its commit."""
    repo, origin = tmp_path / "acme-bot", tmp_path / "origin.git"
    suite = repo / suites / "faq"
    (suite / "data").mkdir(parents=True)
    (suite / "suite.yaml").write_text(SUITE_YAML, encoding="utf-8")
    (suite / "data" / "answers.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in _rows()), encoding="utf-8")
    (repo / "pyproject.toml").write_text('[project]\nname = "acme-bot"\nversion = "2.3.0"\n',
                                         encoding="utf-8")
    (repo / "acme_bot.py").write_text("def answer(question: str) -> str:\n    return 'yes'\n")
    _git(tmp_path, "init", "-q", "--bare", str(origin))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "acme-bot with its faq suite")
    _git(repo, "remote", "add", "origin", str(origin))
    _git(repo, "push", "-q", "-u", "origin", "main")
    assert not (repo / "ftguard").exists() and not (repo / "suites" / "legal").exists()
    return repo


def _bash(script: str, repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


# -- GitHub Actions ------------------------------------------------------------------------


def _workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _job(workflow: dict[str, Any], event: str) -> dict[str, Any]:
    [job] = [j for j in workflow["jobs"].values() if event in j.get("if", "")]
    return job


def test_workflow_installs_ftguard_as_a_package_not_the_users_project() -> None:
    workflow = _workflow()
    env = workflow["env"]
    assert env["FTGUARD_PACKAGE"].startswith("ftguard==")
    assert env["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert (env["FTGUARD_SUITES"], env["FTGUARD_BASELINES"]) == ("suites", "baselines")
    for event in ("pull_request", "push"):
        steps = _job(workflow, event)["steps"]
        [install] = [s for s in steps if s.get("id") == "install"]
        script = install["run"]
        assert 'pip install --index-url "$TORCH_INDEX_URL" torch' in script
        assert 'pip install "$FTGUARD_PACKAGE"' in script
        assert "-e ." not in script and "constraints.txt" not in script
        other = "\n".join(s.get("run", "") for s in steps if s is not install)
        assert "pip install" not in other
        assert "$FTGUARD_SUITES" in other and '"$FTGUARD_BASELINES"' in other
        assert "suites/" not in other and "baselines/" not in other


def _run_job(job: dict[str, Any], workflow_env: dict[str, str], repo: Path, env: dict[str, str],
             summary: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run the job's ``run:`` steps in order, as Actions would (bash -eo pipefail), skipping
    ``uses:`` steps and the install step; stop at the first failure. Step id -> result."""
    env = {**env, **workflow_env, "GITHUB_STEP_SUMMARY": str(summary)}
    done: dict[str, subprocess.CompletedProcess[str]] = {}
    for step in job["steps"]:
        if "run" not in step or step.get("id") == "install":  # install: from the wheel instead
            continue
        script = re.sub(r"\$\{\{\s*env\.(\w+)\s*\}\}", lambda m: env[m.group(1)], step["run"])
        assert "${{" not in script, script
        result = done[step.get("id") or step["name"]] = _bash(script, repo, env)
        if result.returncode:
            break
    return done


@pytest.mark.slow  # builds the wheel once per session, then five fake evaluations (~25 s)
def test_workflow_gates_a_users_repository(wheel_env, tmp_path: Path) -> None:
    repo = _user_repo(tmp_path, "suites")
    workflow = _workflow()
    base_env = {k: str(v) for k, v in workflow["env"].items()}
    env = wheel_env.environ(tmp_path / "ftguard-home")

    def run(event: str, model: str, name: str) -> tuple[dict[str, Any], str]:
        summary = tmp_path / f"{name}.md"
        steps = _run_job(_job(workflow, event), {**base_env, "CANDIDATE_MODEL": model}, repo,
                         env, summary)
        return steps, summary.read_text(encoding="utf-8") if summary.exists() else ""

    # main: the first push accepts the baseline and commits it back
    steps, summary = run("push", BASE, "push")
    assert [r.returncode for r in steps.values()] == [0, 0, 0], steps
    assert "fake-44" in summary  # ftguard baseline show
    log = _git(tmp_path / "origin.git", "log", "--format=%s", "--name-only", "-1", "main")
    assert log.splitlines()[0] == f"ftguard: refresh baseline for {BASE} [skip ci]"
    assert "baselines/index.json" in log and "baselines/fake-44.json" in log
    index = json.loads((repo / "baselines" / "index.json").read_text())
    assert [e["suites"] for e in index["entries"]] == [
        {"faq": json.loads((repo / "runs" / "candidate.json").read_text())["suites"][0]["hash"]}]
    # a second push with the same model: nothing to commit
    steps, _ = run("push", BASE, "push-again")
    assert steps["Commit the refreshed baseline"].stdout.strip() == \
        "baseline unchanged; nothing to commit"
    assert _git(tmp_path / "origin.git", "rev-list", "--count", "main") == "2"

    # pull requests: the unchanged model passes, the regressed one fails the job (exit 1)
    steps, summary = run("pull_request", BASE, "pr-same")
    assert {k: r.returncode for k, r in steps.items()} == {"eval": 0, "gate": 0}, steps
    assert f"## ✅ PASS: {BASE}" in summary
    steps, summary = run("pull_request", REGRESSED, "pr-regressed")
    assert {k: r.returncode for k, r in steps.items()} == {"eval": 0, "gate": 1}, steps
    assert f"## ❌ FAIL: {REGRESSED}" in summary
    assert re.search(r"\| faq \| answers \| acc\* \| 0\.6 \| 0\.425 \| -0\.175 .*regressed FAIL",
                     summary), summary
    assert (repo / "reports" / "gate.html").read_text(encoding="utf-8").startswith("<!DOCTYPE")
    assert json.loads((repo / "reports" / "comparison.json").read_text())["passed"] is False


# -- GitLab CI -----------------------------------------------------------------------------


def _gitlab() -> dict[str, Any]:
    return yaml.safe_load(GITLAB.read_text(encoding="utf-8"))


def test_gitlab_installs_ftguard_as_a_package_not_the_users_project() -> None:
    gitlab = _gitlab()
    variables = gitlab["variables"]
    assert variables["FTGUARD_PACKAGE"].startswith("ftguard==")
    assert variables["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    setup = gitlab[".ftguard"]["before_script"]
    installs = [line for line in setup if "pip install" in line]
    assert installs[:2] == ['pip install --index-url "$TORCH_INDEX_URL" torch',
                            'pip install "$FTGUARD_PACKAGE"']
    assert not any("-e ." in line or "constraints.txt" in line for line in installs)
    gate, refresh = gitlab["ftguard-gate"], gitlab["ftguard-refresh-baseline"]
    assert gate["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    assert "$CI_DEFAULT_BRANCH" in refresh["rules"][0]["if"]
    assert gate["artifacts"]["reports"]["junit"] == "reports/gate-junit.xml"
    assert refresh["artifacts"]["paths"] == ["$FTGUARD_BASELINES"]


def _gitlab_job(name: str, variables: dict[str, str], repo: Path,
                env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """before_script (without its pip install lines: ftguard comes from the wheel) and script
    of job ``name`` in one bash -eo pipefail, as the runner runs them."""
    gitlab = _gitlab()
    job = gitlab[name]
    lines = [*gitlab[job["extends"]]["before_script"], *job["script"]]
    script = "\n".join(line for line in lines if "pip install" not in line)
    env = {**env, "CI_PROJECT_DIR": str(repo)}
    for key, value in {**gitlab["variables"], **variables}.items():  # GitLab expands them
        env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), str(value))
    return _bash(script, repo, env)


@pytest.mark.slow  # builds the wheel once per session, then three fake evaluations (~15 s)
def test_gitlab_jobs_gate_a_users_project_with_its_own_paths(wheel_env, tmp_path: Path) -> None:
    repo = _user_repo(tmp_path, "evals/suites")
    env = wheel_env.environ(tmp_path / "unused-home")
    paths = {"FTGUARD_SUITES": "evals/suites", "FTGUARD_BASELINES": "evals/baselines"}

    refresh = _gitlab_job("ftguard-refresh-baseline", {**paths, "CANDIDATE_MODEL": BASE}, repo,
                          env)
    assert refresh.returncode == 0, refresh.stderr
    assert (repo / "evals" / "baselines" / "fake-44.json").is_file()
    assert (repo / ".cache" / "ftguard").is_dir()  # FTGUARD_HOME inside the project
    assert "fake-44" in refresh.stdout  # ftguard baseline show
    _git(repo, "add", "evals/baselines")
    _git(repo, "commit", "-qm", "accept the baseline")

    same = _gitlab_job("ftguard-gate", {**paths, "CANDIDATE_MODEL": BASE}, repo, env)
    assert same.returncode == 0, same.stderr
    junit = (repo / "reports" / "gate-junit.xml").read_text(encoding="utf-8")
    assert 'failures="0"' in junit and "answers" in junit
    regressed = _gitlab_job("ftguard-gate", {**paths, "CANDIDATE_MODEL": REGRESSED}, repo, env)
    assert regressed.returncode == 1, regressed.stderr
    junit = (repo / "reports" / "gate-junit.xml").read_text(encoding="utf-8")
    assert 'failures="1"' in junit and "<failure" in junit
    assert (repo / "reports" / "gate.html").is_file()
