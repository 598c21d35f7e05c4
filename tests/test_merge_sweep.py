"""ftguard merge --sweep: the merging weight chosen under the gate, on a case built so the
answer is known in advance.

The fine-tune differs from the base only in ``lm_head``, and every choice is one token, so a
choice's log-likelihood is linear in the merging weight λ: for task arithmetic
``ll(λ) = ll_base + λ (ll_tuned - ll_base)`` (the log-normaliser cancels between choices).
Evaluating the base and the fine-tune once therefore predicts every item's answer at every λ;
the target suite's gold answers are the fine-tune's and the general suite's the base's, so
the target gain grows with λ while general accuracy falls, and a max-drop rule on the general
suite fixes which λ must be chosen.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import suite_yaml, write_jsonl

Run = Callable[..., tuple[int, str, str]]
GRID = (0.2, 0.4, 0.6, 0.8, 1.0)
CHOICES = ["yes", "no", "true", "one"]  # one token each (with the leading space)
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "water", "sky",
         "grass", "is", "blue", "green"]


def _tuned(base: Path, folder: Path) -> Path:
    """The base with a perturbed lm_head: a 'fine-tune' whose task vector is one tensor."""
    shutil.copytree(base, folder)
    weights = load_file(base / "model.safetensors")
    g = torch.Generator().manual_seed(7)
    head = weights["lm_head.weight"]
    weights["lm_head.weight"] = head + 1.5 * head.std() * torch.randn(head.shape, generator=g)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def _suite(root: Path, name: str, role: str, golds: list[int]) -> Path:
    rng = np.random.default_rng(len(name))
    rows = [{"id": f"{name}-{i}", "question": " ".join(rng.choice(WORDS, 5)),
             "choices": CHOICES, "answer": int(g)} for i, g in enumerate(golds)]
    write_jsonl(root / name / "data" / "mc.jsonl", rows)
    (root / name / "suite.yaml").write_text(suite_yaml(name, role), encoding="utf-8")
    return root / name


def _loglikelihoods(run_cli: Run, suite: Path, model: Path, out: Path) -> np.ndarray:
    code, _, err = run_cli("eval", suite, "--model", model, "--out", out, "--no-progress")
    assert code == 0, err
    samples = json.loads(out.read_text())["suites"][0]["tasks"][0]["samples"]
    return np.array([s["loglikelihoods"] for s in samples])


@pytest.fixture
def case(tiny_model: Path, tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "home"))
    tuned = _tuned(tiny_model, tmp_path / "tuned")
    n = 60
    probe = {}
    for name in ("skill", "keep"):  # the base's and the fine-tune's answers to every item
        suite = _suite(tmp_path / "probe", name, "general", [0] * n)
        probe[name] = [_loglikelihoods(run_cli, suite, m, tmp_path / f"{name}-{i}.json")
                       for i, m in enumerate((tiny_model, tuned))]
    skill = _suite(tmp_path / "suites", "skill", "target",
                   list(probe["skill"][1].argmax(axis=1)))
    keep = _suite(tmp_path / "suites", "keep", "general", list(probe["keep"][0].argmax(axis=1)))

    def accuracy(name: str, gold_from: int, lam: float) -> float:
        base, ft = probe[name]
        return float(((base + lam * (ft - base)).argmax(axis=1)
                      == probe[name][gold_from].argmax(axis=1)).mean())

    return {"base": tiny_model, "tuned": tuned, "suites": [skill, keep], "accuracy": accuracy}


def test_sweep_picks_the_lambda_the_gate_allows(case, tmp_path: Path, run_cli: Run) -> None:
    acc = case["accuracy"]
    target = [acc("skill", 1, lam) for lam in GRID]
    drop = [1.0 - acc("keep", 0, lam) for lam in GRID]
    target0 = acc("skill", 1, 0.0)  # the base's agreement with the fine-tune
    # the most general accuracy the gate may lose: between the drops at two grid points, so
    # exactly one λ is the largest allowed; the case is only useful where that λ is interior
    k = next(i for i in (2, 1, 3) if drop[i] < drop[i + 1] and target[i] > max(target[:i]))
    tolerance = (drop[k] + drop[k + 1]) / 2
    out, records = tmp_path / "merged", tmp_path / "runs"
    code, stdout, err = run_cli(
        "merge", "--base", case["base"], case["tuned"], "--method", "task_arithmetic",
        "--sweep", "lambda=0.2:1.0:0.2", "--suites", *case["suites"], "--subset", "1.0",
        "--fail-on", f"keep:acc:{tolerance:.6f}", "--out", out, "--records", records,
        "--report", tmp_path / "merge.html", "--no-progress")
    assert code == 0, err
    sweep = json.loads((records / "sweep.json").read_text())
    assert sweep["chosen"] == pytest.approx(GRID[k])
    assert f"chosen: lambda {GRID[k]:g}" in stdout
    # every point is the interpolation the two endpoint runs predict, item for item
    for point, lam, t, d in zip(sweep["points"], GRID, target, drop):
        assert point["lam"] == pytest.approx(lam)
        assert point["target_score"] == pytest.approx(t)
        assert point["gate_passed"] == (d <= tolerance)
        assert point["gain"] == pytest.approx((t - target0) / target0)
    assert [p["lam"] for p in sweep["full"]] == [GRID[k]] and sweep["full"][0]["gate_passed"]
    # --out holds that merge, written like `ftguard merge --lambda`
    merged = load_file(out / "model.safetensors")
    base = load_file(case["base"] / "model.safetensors")
    ft = load_file(case["tuned"] / "model.safetensors")
    expected = base["lm_head.weight"] + GRID[k] * (ft["lm_head.weight"] - base["lm_head.weight"])
    torch.testing.assert_close(merged["lm_head.weight"], expected, rtol=0, atol=1e-6)
    assert torch.equal(merged["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    comparison = json.loads((records / "comparison.json").read_text())
    assert comparison["passed"] and f"lambda {GRID[k]:g}" in comparison["tuned"]["spec"]
    page = (tmp_path / "merge.html").read_text()
    assert 'id="sweep-chart"' in page and page.count('data-stage="subset"') == len(GRID)
    assert page.count('class="pt forgetting fail') == sum(d > tolerance for d in drop)

    # a second sweep answers from the caches; a gate nothing passes writes no model, exit 1
    code, stdout, err = run_cli(
        "merge", "--base", case["base"], case["tuned"], "--sweep", "lambda=0.2:1.0:0.2",
        "--suites", *case["suites"], "--subset", "1.0", "--fail-on", "keep:acc:>=1.01",
        "--out", tmp_path / "none", "--records", tmp_path / "runs2", "--report",
        tmp_path / "none.html", "--no-progress")
    assert code == 1, err
    assert not (tmp_path / "none").exists()
    sweep = json.loads((tmp_path / "runs2" / "sweep.json").read_text())
    assert sweep["chosen"] is None and "no merging weight passes" in sweep["reason"]
    assert "no merge chosen" in stdout and (tmp_path / "none.html").is_file()
