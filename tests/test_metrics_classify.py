"""Classification metrics against scikit-learn; multiple choice against a direct argmax."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from ftguard.metrics import aggregate, score_choice, score_classify

LABELS = ["yes", "no", "maybe", "unsure", "never_seen"]


def _score_all(gold: np.ndarray, pred: np.ndarray, metrics: list[str]
               ) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    scores: dict[str, list[float]] = {}
    stats: dict[str, list[list[float]]] = {}
    for g, p in zip(gold, pred):
        lls = [-2.0] * len(LABELS)
        lls[p] = -0.5
        s, st = score_classify(lls, LABELS, int(g), metrics)
        for k, v in s.items():
            scores.setdefault(k, []).append(v)
        for k, v in st.items():
            stats.setdefault(k, []).append(v)
    return scores, {k: np.array(v) for k, v in stats.items()}


@pytest.mark.parametrize("seed", range(8))
def test_macro_f1_precision_recall_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 80))
    # gold never uses "unsure", predictions never use "maybe"; "never_seen" is in neither.
    gold = rng.choice([0, 1, 2], size=n)
    pred = rng.choice([0, 1, 3], size=n, p=[0.5, 0.3, 0.2])
    scores, stats = _score_all(gold, pred, ["accuracy", "macro_f1", "precision", "recall"])
    assert aggregate("accuracy", scores["accuracy"], None).value == pytest.approx(
        float(np.mean(gold == pred)))
    assert stats["macro_f1"].shape == (n, 3 * len(LABELS))
    assert aggregate("macro_f1", None, stats["macro_f1"]).value == pytest.approx(
        f1_score(gold, pred, average="macro"), abs=1e-12)
    for i, label in enumerate(LABELS):
        p = aggregate(f"precision[{label}]", None, stats[f"precision[{label}]"])
        r = aggregate(f"recall[{label}]", None, stats[f"recall[{label}]"])
        assert p.value == pytest.approx(
            precision_score(gold, pred, labels=[i], average="macro", zero_division=0), abs=1e-12)
        assert r.value == pytest.approx(
            recall_score(gold, pred, labels=[i], average="macro", zero_division=0), abs=1e-12)
        assert np.isfinite([p.ci_low, p.ci_high, r.ci_low, r.ci_high]).all()


def test_known_values() -> None:
    gold = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    _, stats = _score_all(gold, pred, ["macro_f1", "precision[yes]", "recall[maybe]"])
    # F1: yes 2*1/(2+2)=0.5, no 2*2/(3+2)=0.8, maybe 0 (never predicted) -> mean 1.3/3
    assert aggregate("macro_f1", None, stats["macro_f1"]).value == pytest.approx(1.3 / 3)
    assert aggregate("precision[yes]", None, stats["precision[yes]"]).value == 0.5
    assert aggregate("recall[maybe]", None, stats["recall[maybe]"]).value == 0.0
    assert stats["precision[yes]"].tolist()[:2] == [[1, 1, 1], [0, 0, 1]]


def test_classify_ties_go_to_first_label() -> None:
    scores, _ = score_classify([-1.0, -1.0, -3.0], ["a", "b", "c"], 0, ["accuracy"])
    assert scores == {"accuracy": 1.0}
    scores, _ = score_classify([-1.0, -1.0, -3.0], ["a", "b", "c"], 1, ["accuracy"])
    assert scores == {"accuracy": 0.0}


def test_classify_validates_inputs() -> None:
    with pytest.raises(ValueError, match="out of range"):
        score_classify([-1.0, -2.0], ["a", "b"], 2, ["accuracy"])
    with pytest.raises(ValueError, match="log-likelihoods for"):
        score_classify([-1.0], ["a", "b"], 0, ["accuracy"])
    with pytest.raises(ValueError, match="not one of"):
        score_classify([-1.0, -2.0], ["a", "b"], 0, ["precision[c]"])
    with pytest.raises(ValueError, match="does not apply"):
        score_classify([-1.0, -2.0], ["a", "b"], 0, ["acc"])


def _lm_eval_preds(lls: list[float], choices: list[str]) -> tuple[int, int]:
    """lm-eval 0.4.13 ConfigurableTask.process_results, multiple_choice branch."""
    completion_len = np.array([float(len(i)) for i in choices])
    return int(np.argmax(lls)), int(np.argmax(np.asarray(lls) / completion_len))


def test_acc_and_acc_norm_disagree() -> None:
    lls, choices = [-5.0, -6.0], ["Paris", "a much longer answer"]
    assert 6.0 / len(choices[1]) < 5.0 / len(choices[0])
    scores, stats = score_choice(lls, choices, 1, ["acc", "acc_norm"])
    assert scores == {"acc": 0.0, "acc_norm": 1.0}
    assert stats == {}
    scores, _ = score_choice(lls, choices, 0, ["acc", "acc_norm"])
    assert scores == {"acc": 1.0, "acc_norm": 0.0}


def test_acc_norm_uses_characters_not_bytes() -> None:
    # "東京" has 2 characters but 6 UTF-8 bytes: per character -1.5 vs -1.0 (choice 1 wins),
    # per byte it would be -0.5 vs -1.0 (choice 0).
    lls, choices = [-3.0, -2.0], ["東京", "ab"]
    assert score_choice(lls, choices, 1, ["acc_norm"])[0] == {"acc_norm": 1.0}


@pytest.mark.parametrize("seed", range(5))
def test_choice_matches_direct_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(200):
        k = int(rng.integers(2, 6))
        choices = ["x" * int(rng.integers(1, 30)) for _ in range(k)]
        lls = (-rng.gamma(2.0, 5.0, size=k)).round(1).tolist()   # rounding makes ties
        gold = int(rng.integers(0, k))
        scores, _ = score_choice(lls, choices, gold, ["acc", "acc_norm"])
        first_best = max(range(k), key=lambda i: lls[i])           # first of the maxima
        first_best_norm = max(range(k), key=lambda i: lls[i] / len(choices[i]))
        assert (first_best, first_best_norm) == _lm_eval_preds(lls, choices)
        assert scores == {"acc": float(first_best == gold),
                          "acc_norm": float(first_best_norm == gold)}
