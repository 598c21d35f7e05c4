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
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_report import _browser, _page_problems, _parse, chromium  # noqa: F401 -- a fixture

from conftest import lora_adapters, suite_yaml, write_jsonl

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

    # a rule the sample stage does not check (it judges the general gate only) fails the best
    # λ on the whole suites: the next best is tried and chosen
    ceiling = (target[k - 1] + target[k]) / 2
    code, stdout, err = run_cli(
        "merge", "--base", case["base"], case["tuned"], "--sweep", "lambda=0.2:1.0:0.2",
        "--suites", *case["suites"], "--subset", "1.0", "--fail-on",
        f"keep:acc:{tolerance:.6f}", "--fail-on", f"skill:acc:<={ceiling:.6f}",
        "--out", tmp_path / "next", "--records", tmp_path / "runs-next", "--no-progress",
        "--report", tmp_path / "next.html")
    assert code == 0, err
    sweep = json.loads((tmp_path / "runs-next" / "sweep.json").read_text())
    assert [(p["lam"], p["gate_passed"]) for p in sweep["full"]] == [(GRID[k], False),
                                                                     (GRID[k - 1], True)]
    assert sweep["chosen"] == pytest.approx(GRID[k - 1])
    assert "above the ceiling" in sweep["full"][0]["gate_failures"][0]

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


def test_sweep_input_is_checked_before_any_model_loads(case, tmp_path: Path,
                                                       run_cli: Run) -> None:
    common = ("merge", "--base", case["base"], case["tuned"], "--out", tmp_path / "o")
    skill, keep = case["suites"]
    for extra, needle in [
        (("--sweep", "lambda=0.2:1:0.2"), "--sweep needs --suites"),
        (("--sweep", "density=0.5", "--suites", skill, keep), "'lambda=...'"),
        (("--sweep", "lambda=1:0.2:0.2", "--suites", skill, keep), "step must be positive"),
        (("--sweep", "lambda=0:1:0.001", "--suites", skill, keep), "at most 50"),
        (("--sweep", "lambda=0.2,x", "--suites", skill, keep), "not a list of numbers"),
        (("--sweep", "lambda=0.5", "--suites", keep), "no suite has role 'target'"),
        (("--suites", skill, keep, "--subset", "nosuch=0.5"), "nosuch"),
        (("--suites", skill, keep, "--policy", tmp_path / "missing.yaml"), "missing.yaml"),
        (("--suites", skill, keep, "--fail-on", "acc:lots"), "acc:lots"),
    ]:
        code, _, err = run_cli(*common, *extra)
        assert code == 2 and needle in err and "Traceback" not in err, (extra, err)
    assert not (tmp_path / "o").exists() and not Path("runs/merge").exists()


def test_grid_and_ranking() -> None:
    from ftguard.merge.sweep import rank
    from ftguard.merge.sweep_record import SweepPoint, parse_sweep

    assert parse_sweep("lambda=0.2:1.0:0.2") == (0.2, 0.4, 0.6, 0.8, 1.0)
    assert parse_sweep("lambda=0.1:0.35:0.1") == (0.1, 0.2, 0.3)  # stop included when on grid
    assert parse_sweep("λ=1, 0.5,0.5,-0.5") == (-0.5, 0.5, 1.0)
    points = [SweepPoint(lam=lam, stage="subset", run="r", gain=gain, gate_passed=ok)
              for lam, gain, ok in [(0.2, 0.05, True), (0.4, 0.10, True), (0.6, 0.10, True),
                                    (0.8, 0.30, False), (1.0, None, True)]]
    # failing points never win; equal gains go to the smaller λ; no gain ranks last
    assert [p.lam for p in rank(points)] == [0.4, 0.6, 0.2, 1.0]


def test_sweep_report_in_headless_chromium(tmp_path: Path, chromium: str) -> None:  # noqa: F811
    from conftest import binary_run, flipped_pair
    from ftguard.compare import compare
    from ftguard.merge.sweep_record import SweepPoint, SweepRecord
    from ftguard.report import write_report

    hostile = "<script>alert(1)</script>"
    base, tuned = flipped_pair(200, 5, 20)
    keep = [True] * 200
    comparison = compare(binary_run("base", {("legal", "t"): base, ("general", "g"): keep}),
                         binary_run("merge", {("legal", "t"): tuned, ("general", "g"): keep}),
                         resamples=200)
    gains, taxes = (0.02, 0.06, 0.09, 0.12), (0.0, -0.01, -0.03, -0.08)
    points = [SweepPoint(lam=lam, stage="subset", run=f"lambda-{lam:g}-subset.json", gain=g,
                         gain_ci=(g - 0.02, g + 0.02), alignment_tax=t, tax_ci=(t - 0.02, t),
                         gate_passed=t > -0.05,
                         gate_failures=[] if t > -0.05 else [f"general/g acc {hostile}"])
              for lam, g, t in zip((0.25, 0.5, 0.75, 1.0), gains, taxes)]
    record = SweepRecord(base=comparison.base, models=[f"adapter-{hostile}"], method="ties",
                         weights=[1.0], density=0.5, lambdas=[0.25, 0.5, 0.75, 1.0],
                         subset={"subset": 0.25, "task_subset": {"t": 1.0}}, points=points,
                         full=[points[2].model_copy(update={"stage": "full"})], chosen=0.75,
                         reason="best target gain", out="merged")
    page = write_report(comparison, tmp_path / "merge.html", sweep=record)
    shot = tmp_path / "merge.png"
    done = _browser(chromium, tmp_path, page.as_uri(), f"--screenshot={shot}",
                    "--window-size=1280,2400")
    assert shot.exists() and shot.stat().st_size > 10_000 and not _page_problems(done.stderr)
    done = _browser(chromium, tmp_path, page.as_uri(), "--dump-dom")
    dom = done.stdout
    assert not _page_problems(done.stderr)
    assert "chosen: lambda 0.75" in dom and "★ chosen" in dom and "25% of each task, t: 1" in dom
    assert f"adapter-{hostile}" in " ".join(_parse(dom).text)  # shown as text, not run
    assert dom.count('class="pt gain fail"') == 1 and dom.count('data-stage="full"') == 1
    circles = re.findall(r'<circle class="pt gain[^"]*" cx="([0-9.]+)"[^>]*data-step', dom)
    assert len(circles) == 4  # λ left to right:
    assert [float(x) for x in circles] == sorted(float(x) for x in circles)


def test_adapters_evaluated_in_memory_are_the_written_merge(tiny_model: Path, tmp_path: Path,
                                                           make_suite: Callable[..., Path],
                                                           run_cli: Run,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Two LoRA adapters, TIES, saved in bfloat16, one λ (``--suites`` without ``--sweep``):
    the merge the sweep evaluated in memory answers like the written folder loaded anew."""
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "home"))
    adapters = lora_adapters(tiny_model, tmp_path)
    target = make_suite(suite_yaml("skill", "target"), name="skill")
    general = make_suite(name="general")  # all four task kinds
    out, records = tmp_path / "merged", tmp_path / "runs"
    code, _, err = run_cli(
        "merge", "--base", tiny_model, *adapters, "--method", "ties", "--density", "0.6",
        "--lambda", "0.7", "--dtype", "bfloat16", "--suites", target, general,
        "--subset", "1.0", "--fail-on", "general:headline:>=0", "--out", out,
        "--records", records, "--report", tmp_path / "r.html", "--no-progress")
    assert code == 0, err
    sweep = json.loads((records / "sweep.json").read_text())
    assert sweep["lambdas"] == [0.7] and sweep["chosen"] == 0.7 and sweep["out"] == str(out)
    code, _, err = run_cli("eval", target, general, "--model", out, "--out",
                           tmp_path / "loaded.json", "--no-progress")
    assert code == 0, err
    in_memory = json.loads((records / "lambda-0.7.json").read_text())
    loaded = json.loads((tmp_path / "loaded.json").read_text())
    for a, b in zip(in_memory["suites"], loaded["suites"], strict=True):
        for ta, tb in zip(a["tasks"], b["tasks"], strict=True):
            assert [s["prediction"] for s in ta["samples"]] == \
                [s["prediction"] for s in tb["samples"]], ta["name"]
            for name, metric in tb["metrics"].items():
                assert ta["metrics"][name]["value"] == pytest.approx(metric["value"], rel=1e-5)
