"""ROUGE F-measures computed by ``rouge_score`` (stemmer on), max over references.

``rouge_score`` is imported lazily: it pulls in nltk and absl. Its default tokenizer keeps
only ``[a-z0-9]`` after lower-casing, so text without ASCII letters or digits (CJK, for
instance) has no tokens and scores 0. ``rougeLsum`` splits summaries on newlines.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from ftguard.metrics.base import mean_metric

ROUGE_TYPES: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@cache
def _scorer(rouge_types: tuple[str, ...]) -> Any:
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(list(rouge_types), use_stemmer=True)


# stacked decorators register bottom-up: rouge1 first
@mean_metric("rougeLsum", higher_is_better=True, kind="generate", binary=False,
             description="summary-level ROUGE-L F-measure, sentences split on newlines")
@mean_metric("rougeL", higher_is_better=True, kind="generate", binary=False,
             description="ROUGE-L F-measure (rouge-score, stemmer), max over references")
@mean_metric("rouge2", higher_is_better=True, kind="generate", binary=False,
             description="ROUGE-2 F-measure (rouge-score, stemmer), max over references")
@mean_metric("rouge1", higher_is_better=True, kind="generate", binary=False,
             description="ROUGE-1 F-measure (rouge-score, stemmer), max over references")
def rouge_fmeasures(prediction: str, references: list[str],
                    rouge_types: tuple[str, ...]) -> dict[str, float]:
    """F-measure per ROUGE type; with several references the best one per type
    (``RougeScorer.score_multi``)."""
    unknown = set(rouge_types) - set(ROUGE_TYPES)
    if unknown:
        raise ValueError(f"unknown ROUGE types {sorted(unknown)}; known: {list(ROUGE_TYPES)}")
    scores = _scorer(tuple(rouge_types)).score_multi(references, prediction)
    return {name: float(scores[name].fmeasure) for name in rouge_types}
