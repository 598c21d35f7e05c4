"""Calibration metrics against hand-computed values and independent implementations (scipy's
softmax, scikit-learn's Brier score, a per-item loop for equal-mass ECE)."""

from __future__ import annotations

import numpy as np
import pytest

from ftguard.metrics.calibration import (
    brier_score,
    choice_probabilities,
    ece_equal_mass,
    reliability_bins,
    top_label,
)


def _ece_reference(conf: list[float], correct: list[float], n_bins: int) -> float:
    """Equal-mass ECE the long way: rank each item, give it the bin of its rank."""
    n = len(conf)
    bins = min(n_bins, n)
    small, extra = divmod(n, bins)  # the first `extra` bins hold one item more
    ranked = sorted(range(n), key=lambda i: (conf[i], i))
    members: list[list[int]] = [[] for _ in range(bins)]
    position = 0
    for b in range(bins):
        for _ in range(small + (b < extra)):
            members[b].append(ranked[position])
            position += 1
    total = 0.0
    for items in members:
        accuracy = sum(correct[i] for i in items) / len(items)
        confidence = sum(conf[i] for i in items) / len(items)
        total += len(items) / n * abs(accuracy - confidence)
    return total


def test_choice_probabilities_are_the_softmax_of_the_loglikelihoods() -> None:
    from scipy.special import softmax

    lls = [-3.2, -1.1, -7.5, -1.1]
    assert choice_probabilities(lls) == pytest.approx(softmax(lls), abs=1e-15)
    assert choice_probabilities([-1e4, -1e4 - np.log(3)]) == pytest.approx([0.75, 0.25])
    assert choice_probabilities([-np.inf, -2.0]).tolist() == [0.0, 1.0]
    for bad in ([], [-np.inf, -np.inf], [np.nan, -1.0]):
        with pytest.raises(ValueError, match="no finite choice"):
            choice_probabilities(bad)


def test_top_label_ties_go_to_the_first_choice_as_acc() -> None:
    assert top_label(np.array([0.4, 0.4, 0.2]), gold=1) == (0.4, 0.0)
    assert top_label(np.array([0.1, 0.7, 0.2]), gold=1) == (0.7, 1.0)


def test_brier_matches_scikit_learn_and_its_bounds() -> None:
    from sklearn.metrics import brier_score_loss

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(2), size=50)
    gold = rng.integers(0, 2, size=50)
    ours = np.mean([brier_score(p, int(g)) for p, g in zip(probs, gold)])
    # scikit-learn's binary Brier is the mean of (p1 - y)^2; the two-class sum is twice it
    assert ours == pytest.approx(2 * brier_score_loss(gold, probs[:, 1]), rel=1e-12)
    assert brier_score(np.array([1.0, 0.0, 0.0]), 0) == 0.0
    assert brier_score(np.array([0.0, 1.0, 0.0]), 0) == 2.0
    assert brier_score(np.array([0.5, 0.25, 0.25]), 0) == pytest.approx(0.375)


def test_ece_by_hand() -> None:
    # two bins: {0.6, 0.7} both wrong (gap 0.65), {0.8, 0.9} both right (gap 0.15)
    assert float(ece_equal_mass(np.array([0.9, 0.6, 0.8, 0.7]), np.array([1, 0, 1, 0]),
                                n_bins=2)) == pytest.approx(0.4)
    # a perfectly calibrated set: each bin's accuracy equals its confidence
    conf = np.array([0.5, 0.5, 1.0, 1.0])
    assert float(ece_equal_mass(conf, np.array([1, 0, 1, 1]), n_bins=2)) == pytest.approx(0.0)
    # fewer items than bins: one item per bin, ECE = mean |correct - confidence|
    assert float(ece_equal_mass(np.array([0.9, 0.3]), np.array([0, 1]))) == pytest.approx(0.8)


@pytest.mark.parametrize(("n", "n_bins"), [(1, 10), (7, 3), (10, 10), (23, 10), (130, 10)])
def test_ece_matches_the_per_item_reference(n: int, n_bins: int) -> None:
    rng = np.random.default_rng(n)
    conf = np.round(rng.uniform(0.25, 1.0, size=n), 2)  # rounded: equal confidences occur
    correct = (rng.uniform(size=n) < conf).astype(float)
    assert float(ece_equal_mass(conf, correct, n_bins)) == pytest.approx(
        _ece_reference(conf.tolist(), correct.tolist(), n_bins), abs=1e-12)
    bins = reliability_bins(conf, correct, n_bins)
    assert sum(b.count for b in bins) == n and len(bins) == min(n_bins, n)
    assert max(b.count for b in bins) - min(b.count for b in bins) <= 1
    assert sum(b.count / n * abs(b.accuracy - b.confidence) for b in bins) == pytest.approx(
        float(ece_equal_mass(conf, correct, n_bins)), abs=1e-12)


def test_ece_is_vectorised_over_resamples() -> None:
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.3, 1.0, size=(5, 40))
    correct = (rng.uniform(size=(5, 40)) < 0.7).astype(float)
    batch = ece_equal_mass(conf, correct)
    assert batch.shape == (5,)
    for row in range(5):
        assert batch[row] == pytest.approx(float(ece_equal_mass(conf[row], correct[row])))
    with pytest.raises(ValueError, match="non-empty"):
        ece_equal_mass(np.zeros(3), np.zeros(4))


def test_brier_and_ece_are_recorded_compared_and_gated(tmp_path, run_cli) -> None:
    import json

    from conftest import MC_ROWS, MC_TASK, suite_yaml, write_jsonl
    from ftguard.record import read_run

    root = tmp_path / "cal"
    (root / "data").mkdir(parents=True)
    (root / "suite.yaml").write_text(suite_yaml("cal", tasks=MC_TASK + "    metrics: [acc, brier, ece]\n"))
    write_jsonl(root / "data" / "mc.jsonl", MC_ROWS)
    for seed in ("1", "2"):
        code, _, err = run_cli("eval", root, "--model", f"fake:{seed}", "--no-progress",
                               "--out", tmp_path / f"{seed}.json")
        assert code == 0, err
    (task,) = read_run(tmp_path / "1.json").suites[0].tasks
    assert list(task.metrics) == ["acc", "brier", "ece"]
    assert not task.metrics["brier"].higher_is_better and task.metrics["ece"].aggregation == "set"
    rows = []
    for sample, row in zip(task.samples, MC_ROWS):
        probs = choice_probabilities(sample.loglikelihoods)
        assert sample.scores["brier"] == pytest.approx(brier_score(probs, row["answer"]))
        assert sample.stats["ece"] == list(top_label(probs, row["answer"]))
        assert sample.scores["acc"] == sample.stats["ece"][1]  # the same top choice
        rows.append(sample.stats["ece"])
    conf, correct = np.array(rows).T
    assert task.metrics["ece"].value == pytest.approx(float(ece_equal_mass(conf, correct)))
    assert task.metrics["ece"].ci_low <= task.metrics["ece"].value <= task.metrics["ece"].ci_high
    assert task.metrics["brier"].value == pytest.approx(
        np.mean([s.scores["brier"] for s in task.samples]))
    code, out, err = run_cli("compare", tmp_path / "1.json", tmp_path / "2.json",
                             "--fail-on", "cal/mc:brier:not-regressed",
                             "--fail-on", "cal/mc:ece:not-regressed", "--format", "json")
    assert code in (0, 1), err
    rows_out = {r["metric"]: r for r in json.loads(out)["rows"]}
    assert rows_out["brier"]["higher_is_better"] is False
    assert rows_out["ece"]["method"] == "swap-exact" and rows_out["ece"]["p_value"] is not None
    assert {r["rule"] for r in json.loads(out)["gate"]} >= {"cal/mc:ece:not-regressed"}


def test_run_report_draws_the_reliability_diagram_of_the_ece_bins(tmp_path, run_cli) -> None:
    import re

    from conftest import MC_ROWS, MC_TASK, suite_yaml, write_jsonl
    from ftguard.record import read_run
    from ftguard.report import render_report

    root = tmp_path / "cal"
    (root / "data").mkdir(parents=True)
    (root / "suite.yaml").write_text(suite_yaml("cal", tasks=MC_TASK + "    metrics: [acc, ece]\n"))
    rows = [dict(r, id=f"{r['id']}-{i}") for i in range(4) for r in MC_ROWS]
    write_jsonl(root / "data" / "mc.jsonl", rows)
    code, _, err = run_cli("eval", root, "--model", "fake:3", "--no-progress", "--out",
                           tmp_path / "run.json")
    assert code == 0, err
    run = read_run(tmp_path / "run.json")
    page = render_report(run)
    svg = page.split('<svg class="reliability"')[1].split("</svg>")[0]
    circles = re.findall(r'<circle class="bin" cx="([\d.]+)" cy="([\d.]+)"', svg)
    (task,) = run.suites[0].tasks
    conf, correct = zip(*(s.stats["ece"] for s in task.samples))
    bins = reliability_bins(conf, correct)
    assert len(circles) == len(bins) == min(10, len(rows))
    for (cx, cy), b in zip(circles, bins):  # 240 px square, 36 px margin
        assert float(cx) == pytest.approx(36 + 240 * b.confidence, abs=0.06)
        assert float(cy) == pytest.approx(36 + 240 * (1 - b.accuracy), abs=0.06)
    assert f"cal/mc: ECE {task.metrics['ece'].value:.3f} (n={len(rows)})" in page
    assert '<svg class="reliability"' not in render_report(run.model_copy(update={"suites": [
        s.model_copy(update={"tasks": []}) for s in run.suites]}))
