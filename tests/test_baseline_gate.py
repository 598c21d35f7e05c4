"""``ftguard baseline accept|show`` and ``ftguard gate``.

The CI recipes that run them (examples/github-actions, examples/gitlab) are tested in a
user's repository with ftguard from the built wheel: tests/test_ci_recipes.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import suite_yaml, write_jsonl
from ftguard.record import read_run, write_run

RunCli = Callable[..., tuple[int, str, str]]


def _rows(n: int = 60) -> list[dict[str, object]]:
    """``n`` four-way sums; the fake model gets about a quarter right."""
    return [{"id": f"q{i}", "question": f"What is {i} plus {i % 7 + 2}?",
             "choices": [str(2 * i + i % 7 + 2 + d) for d in (0, 1, -1, 10)], "answer": 0}
            for i in range(n)]


def _write_suite(repo: Path, name: str = "tiny", n: int = 60) -> Path:
    root = repo / "suites" / name
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.yaml").write_text(suite_yaml(name), encoding="utf-8")
    write_jsonl(root / "data" / "mc.jsonl", _rows(n))
    return root


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=ftguard-test", "-c", "user.email=t@example.com",
                           "-c", "commit.gpgsign=false", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with a 60-item choice suite at suites/tiny, as the working directory."""
    root = tmp_path / "repo"
    _write_suite(root)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "suites")
    monkeypatch.chdir(root)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return root


def _eval(run_cli: RunCli, out: str, model: str = "fake:0", suites: str = "suites/") -> Path:
    code, _, err = run_cli("eval", suites, "--model", model, "--no-progress", "--out", out)
    assert code == 0, err
    return Path(out)


def _perfect(path: Path) -> Path:
    """Mark every sample of the run correct (a clearly better model) and rewrite it."""
    run = read_run(path)
    for suite in run.suites:
        for task in suite.tasks:
            for sample in task.samples:
                sample.scores.update({m: 1.0 for m in ("acc", "acc_norm") if m in sample.scores})
            for name, metric in task.metrics.items():
                if name in ("acc", "acc_norm"):
                    metric.value = metric.ci_low = metric.ci_high = 1.0
    write_run(run, path)
    return path


# -- baseline accept / show --------------------------------------------------------------


def test_accept_and_show_round_trip_records_commit(repo: Path, run_cli: RunCli) -> None:
    run = _eval(run_cli, "runs/base.json")
    head = _git(repo, "rev-parse", "HEAD")
    code, out, err = run_cli("baseline", "accept", run)
    assert code == 0, err
    assert out.startswith("accepted fake-0: baselines/fake-0.json (fake:0, tiny@")
    index = json.loads((repo / "baselines" / "index.json").read_text())
    [entry] = index["entries"]
    suite_hash = read_run(run).suites[0].hash
    assert (entry["name"], entry["model"], entry["fingerprint"]) == ("fake-0", "fake:0", "fake-0")
    assert entry["suites"] == {"tiny": suite_hash}
    assert entry["commit"] == head
    assert read_run(repo / "baselines" / "fake-0.json").suites[0].hash == suite_hash

    code, out, _ = run_cli("baseline", "show")
    assert code == 0
    header, line = out.strip().splitlines()
    assert header.split() == ["name", "model", "suites", "commit", "accepted"]
    assert line.split()[:4] == ["fake-0", "fake:0",
                                f"tiny@{suite_hash.removeprefix('sha256:')[:8]}", head[:8]]

    # --if-changed leaves an identical baseline alone; --name adds a second entry.
    before = (repo / "baselines" / "index.json").read_text()
    code, out, _ = run_cli("baseline", "accept", run, "--if-changed")
    assert (code, (repo / "baselines" / "index.json").read_text()) == (0, before)
    assert "unchanged" in out
    assert run_cli("baseline", "accept", run, "--name", "release-1")[0] == 0
    names = [e["name"] for e in json.loads((repo / "baselines/index.json").read_text())["entries"]]
    assert names == ["fake-0", "release-1"]


@pytest.mark.parametrize(("flags", "reason"), [
    (["--limit", "5"], "at most 5 items per task (--limit 5)"),
    (["--subset", "0.25"], "a seeded sample of 25% of each task (--subset 0.25)"),
    (["--subset", "tiny/mc=12"], "a seeded sample of task(s) tiny/mc (12 items) (--subset TASK=N|F)"),
])
def test_accept_refuses_a_partial_run_unless_allowed(repo: Path, run_cli: RunCli,
                                                     flags: list[str], reason: str) -> None:
    code, _, err = run_cli("eval", "suites/", "--model", "fake:0", "--no-progress",
                           "--out", "runs/part.json", *flags)
    assert code == 0, err
    code, out, err = run_cli("baseline", "accept", "runs/part.json")
    assert code == 2 and out == ""
    assert f"runs/part.json: a partial run ({reason}); as a baseline it would gate " in err
    assert "--allow-partial" in err and "Traceback" not in err
    assert not (repo / "baselines").exists()
    code, out, err = run_cli("baseline", "accept", "runs/part.json", "--allow-partial")
    assert code == 0, err
    assert out.startswith("accepted fake-0: baselines/fake-0.json")
    assert err == (f"ftguard: warning: baseline fake-0 is a partial run ({reason}); "
                   "candidates are gated on its items only\n")


def test_a_whole_subset_is_not_partial(repo: Path, run_cli: RunCli) -> None:
    from ftguard.record.config import RunConfig

    assert RunConfig(subset=1.0, task_subset={"tiny/mc": 1.0}).partial_reason() is None
    assert RunConfig(limit=None, subset=None).partial_reason() is None
    # the whole number 1 is one item, the fraction 1.0 every item
    assert RunConfig(task_subset={"mc": 1}).partial_reason() == (
        "a seeded sample of task(s) mc (1 item) (--subset TASK=N|F)")
    assert RunConfig(limit=3, subset=0.5).partial_reason() == (
        "at most 3 items per task (--limit 3); a seeded sample of 50% of each task (--subset 0.5)")
    code, _, err = run_cli("eval", "suites/", "--model", "fake:0", "--no-progress",
                           "--out", "runs/whole.json", "--subset", "1.0")
    assert code == 0, err
    code, _, err = run_cli("baseline", "accept", "runs/whole.json")
    assert (code, err) == (0, "")


def test_show_empty_folder(repo: Path, run_cli: RunCli) -> None:
    code, out, _ = run_cli("baseline", "show", "--dir", "nowhere")
    assert code == 0
    assert "no baselines in nowhere" in out and "ftguard baseline accept" in out


def test_accept_refuses_stale_suite_hash_unless_forced(repo: Path, run_cli: RunCli) -> None:
    run = _eval(run_cli, "runs/base.json")
    write_jsonl(repo / "suites/tiny/data/mc.jsonl", _rows(59))  # the suite changed after the run
    code, _, err = run_cli("baseline", "accept", run)
    assert code == 2
    assert "the run's suites differ from the suites on disk (tiny: run" in err
    assert "--force" in err and "Traceback" not in err
    assert not (repo / "baselines").exists()
    code, _, err = run_cli("baseline", "accept", run, "--force")
    assert code == 0, err
    assert (repo / "baselines" / "fake-0.json").is_file()


# -- gate --------------------------------------------------------------------------------


def test_gate_passes_unchanged_candidate(repo: Path, run_cli: RunCli) -> None:
    run_cli("baseline", "accept", _eval(run_cli, "runs/base.json"))
    _eval(run_cli, "runs/candidate.json")
    code, out, err = run_cli("gate", "--candidate", "runs/candidate.json", "--out",
                             "reports/comparison.json")
    assert code == 0, err
    assert "baseline: fake-0 (fake:0, commit" in err
    assert out.startswith("PASS: fake:0")
    comparison = json.loads((repo / "reports/comparison.json").read_text())
    assert comparison["passed"] is True
    assert {r["verdict"] for r in comparison["rows"]} == {"unchanged"}


def test_gate_fails_on_regression(repo: Path, run_cli: RunCli) -> None:
    run_cli("baseline", "accept", _perfect(_eval(run_cli, "runs/base.json")))
    _eval(run_cli, "runs/candidate.json")
    code, out, err = run_cli("gate", "--baseline", "baselines/", "--candidate",
                             "runs/candidate.json")
    assert code == 1, err
    assert out.startswith("FAIL: fake:0")
    assert re.search(r"tiny\s+mc\s+acc\*\s+1\s+0\.\d+\s+-0\.\d+.*regressed FAIL", out)


def test_gate_accepts_a_runrecord_file_and_compare_options(repo: Path, run_cli: RunCli) -> None:
    base = _perfect(_eval(run_cli, "runs/base.json"))
    _eval(run_cli, "runs/candidate.json")
    # A floor the candidate meets turns the default rule off: the same options as compare.
    code, out, err = run_cli("gate", "--baseline", base, "--candidate", "runs/candidate.json",
                             "--fail-on", "acc:>=0.05", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["passed"] is True
    code, _, err = run_cli("gate", "--baseline", base, "--candidate", "runs/candidate.json",
                           "--alpha", "2")
    assert code == 2 and "--alpha 2.0: must be between 0 and 1" in err
    code, _, err = run_cli("gate", "--baseline", base, "--candidate", "runs/candidate.json",
                           "--name", "x")
    assert code == 2 and "is a RunRecord file" in err


def test_gate_markdown_and_step_summary(repo: Path, run_cli: RunCli, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    run_cli("baseline", "accept", _eval(run_cli, "runs/base.json"))
    _eval(run_cli, "runs/candidate.json")
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, _ = run_cli("gate", "--candidate", "runs/candidate.json", "--format", "markdown")
    assert code == 0
    assert out.startswith("## ✅ PASS: fake:0")
    assert "| suite | task | metric | base | tuned | delta | 95% CI | p adj | n | verdict |" in out
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# earlier step\n## ✅ PASS: fake:0")
    assert out.strip() in text  # exactly the --format markdown output
    assert "Baseline `fake-0` (fake:0, commit" in text
    run_cli("gate", "--candidate", "runs/candidate.json")  # text on stdout, markdown appended
    assert summary.read_text(encoding="utf-8").count("| tiny | mc | acc* |") == 2


def test_gate_without_matching_baseline_explains(repo: Path, run_cli: RunCli) -> None:
    code, _, err = run_cli("gate", "--candidate", _eval(run_cli, "runs/candidate.json"))
    assert code == 2
    assert "--baseline baselines: no such folder or file" in err
    assert "ftguard baseline accept runs/base.json --dir baselines" in err

    run_cli("baseline", "accept", _eval(run_cli, "runs/base.json"))
    old = read_run(Path("runs/base.json")).suites[0].hash.removeprefix("sha256:")[:8]
    write_jsonl(repo / "suites/tiny/data/mc.jsonl", _rows(59))  # the suite changed since
    _write_suite(repo, "extra", n=10)
    candidate = _eval(run_cli, "runs/candidate.json")
    new = read_run(candidate).suites[1].hash.removeprefix("sha256:")[:8]
    code, _, err = run_cli("gate", "--candidate", candidate)
    assert code == 2, err
    assert "no accepted baseline covers the candidate's suites" in err
    assert f"'fake-0' (fake:0): extra missing, tiny is {old} there, {new} in the candidate" in err
    assert ("ftguard eval SUITES --model fake:0 --out runs/base.json && ftguard baseline "
            "accept runs/base.json --dir baselines") in err
    assert "Traceback" not in err

    code, _, err = run_cli("gate", "--candidate", candidate, "--name", "nope")
    assert code == 2 and "baselines has no baseline named 'nope'" in err


def test_gate_uses_the_baseline_suites_the_candidate_has(repo: Path, run_cli: RunCli) -> None:
    _write_suite(repo, "extra", n=10)
    run_cli("baseline", "accept", _eval(run_cli, "runs/base.json"))  # tiny + extra
    _eval(run_cli, "runs/candidate.json", suites="suites/tiny")
    code, out, err = run_cli("gate", "--candidate", "runs/candidate.json")
    assert code == 0, err
    assert "extra" not in out.split("(* = gated metric)")[0]
