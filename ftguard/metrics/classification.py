"""Classification over a fixed label set: accuracy, macro-F1, per-label precision/recall.

Corpus statistics per sample:

- ``macro_f1``: ``onehot(pred) ++ onehot(gold) ++ onehot(pred) * onehot(gold)`` over the
  task's K labels (length 3K). Summed, they give per-label predicted, gold and
  true-positive counts.
- ``precision[L]`` / ``recall[L]``: ``[tp, is_pred_L, is_gold_L]`` (length 3).

Values equal scikit-learn's ``f1_score(average="macro")`` (over the labels present in gold
or predictions) and ``precision_score`` / ``recall_score`` with ``zero_division=0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ftguard.metrics.base import corpus_metric, mean_metric


@mean_metric("accuracy", higher_is_better=True, kind="classify", binary=True,
             description="most likely label is the gold label")
def predict_label(loglikelihoods: Sequence[float]) -> int:
    """Index of the most likely label; ties go to the first (``np.argmax``)."""
    if len(loglikelihoods) == 0:
        raise ValueError("no label log-likelihoods")
    return int(np.argmax(np.asarray(loglikelihoods, dtype=np.float64)))


def macro_f1_stats(pred: int, gold: int, n_labels: int) -> list[float]:
    """Per-sample macro-F1 statistics (length ``3 * n_labels``)."""
    onehot_pred = np.zeros(n_labels)
    onehot_gold = np.zeros(n_labels)
    onehot_pred[pred] = 1.0
    onehot_gold[gold] = 1.0
    return np.concatenate([onehot_pred, onehot_gold, onehot_pred * onehot_gold]).tolist()


def label_stats(pred: int, gold: int, label: int) -> list[float]:
    """Per-sample ``[tp, is_pred, is_gold]`` for one label."""
    is_pred, is_gold = float(pred == label), float(gold == label)
    return [is_pred * is_gold, is_pred, is_gold]


@corpus_metric("macro_f1", higher_is_better=True, kind="classify",
               description="unweighted mean F1 over labels seen in gold or predictions")
def macro_f1_from_stats(stats: np.ndarray) -> np.ndarray:
    """Macro-F1 over the labels seen in gold or predictions; ``(..., 3K)`` -> ``(...)``.

    0 when no label is seen (only possible for empty statistics)."""
    s = np.asarray(stats, dtype=np.float64)
    n_pred, n_gold, tp = np.split(s, 3, axis=-1)
    seen = (n_pred + n_gold) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(seen, 2 * tp / (n_pred + n_gold), 0.0)
        n_seen = seen.sum(axis=-1)
        return np.where(n_seen > 0, f1.sum(axis=-1) / n_seen, 0.0)


@corpus_metric("precision", higher_is_better=True, kind="classify", parametrised=True,
               description="precision of one label (precision[LABEL]); 0 if never predicted")
def precision_from_stats(stats: np.ndarray) -> np.ndarray:
    """tp / predicted, 0 when the label is never predicted; ``(..., 3)`` -> ``(...)``."""
    s = np.asarray(stats, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s[..., 1] > 0, s[..., 0] / s[..., 1], 0.0)


@corpus_metric("recall", higher_is_better=True, kind="classify", parametrised=True,
               description="recall of one label (recall[LABEL]); 0 if never gold")
def recall_from_stats(stats: np.ndarray) -> np.ndarray:
    """tp / gold, 0 when the label never occurs in gold; ``(..., 3)`` -> ``(...)``."""
    s = np.asarray(stats, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s[..., 2] > 0, s[..., 0] / s[..., 2], 0.0)
