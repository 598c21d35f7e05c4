"""SQuAD v1.1 answer matching: exact match and token F1, max over references.

Follows the official ``evaluate-v1.1.py``: lower-case, strip ASCII punctuation
(``string.punctuation``), drop the articles ``a|an|the``, collapse whitespace. As in v1.1
(unlike v2.0), an empty prediction against an empty reference has F1 0 but EM 1.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from ftguard.metrics.base import mean_metric

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation; the steps run in the official script's order."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


@mean_metric("exact_match", higher_is_better=True, kind="generate", binary=True,
             description="SQuAD v1.1 normalised exact match, max over references")
def exact_match(prediction: str, references: list[str]) -> float:
    """1.0 when the normalised prediction equals any normalised reference."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(ref) for ref in references))


@mean_metric("exact_match_strict", higher_is_better=True, kind="generate", binary=True,
             description="prediction equals a reference after strip()")
def exact_match_strict(prediction: str, references: list[str]) -> float:
    """1.0 when the prediction equals any reference after stripping outer whitespace."""
    pred = prediction.strip()
    return float(any(pred == ref.strip() for ref in references))


def token_f1(prediction: str, reference: str) -> float:
    """F1 of the normalised token multisets of one prediction and one reference."""
    pred_tokens = normalize_answer(prediction).split()
    ref_tokens = normalize_answer(reference).split()
    same = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if same == 0:
        return 0.0
    precision = 1.0 * same / len(pred_tokens)
    recall = 1.0 * same / len(ref_tokens)
    return (2 * precision * recall) / (precision + recall)


@mean_metric("f1", higher_is_better=True, kind="generate", binary=False,
             description="SQuAD v1.1 token F1, max over references")
def f1(prediction: str, references: list[str]) -> float:
    """SQuAD token F1, max over references."""
    return max(token_f1(prediction, ref) for ref in references)
