"""Metrics: definitions, per-sample scoring and aggregation with confidence intervals.

Importing this package is cheap: sacrebleu and rouge-score load on first use.

- :mod:`.base` / :mod:`.registry` -- what a metric is, the ``mean_metric`` /
  ``corpus_metric`` decorators that register one; ``get_metric``, ``METRICS``.
- :mod:`.score` -- per-kind scoring of one sample: ``score_generate`` & co.
- :mod:`.aggregate` -- task value + CI: ``aggregate`` -> ``MetricValue``.
- :mod:`.batch` -- the batch hook: metrics scored over a whole task at once.
- family modules hold the definitions, each a decorator beside its function: :mod:`.qa`
  (SQuAD EM/F1), :mod:`.rouge`, :mod:`.json_format`, :mod:`.instruction_following` (IFEval),
  :mod:`.bleu_chrf`, :mod:`.bertscore`, :mod:`.choice`,
  :mod:`.classification`, :mod:`.perplexity`.
- metrics from outside ftguard: :mod:`.user` (``@ftguard.metric``), :mod:`.external`
  (import paths, the ``ftguard.metrics`` entry points), :mod:`.hf_evaluate`
  (``evaluate:PATH_OR_ID``), :mod:`.recompute` (corpus values recomputed from answers).
"""

from __future__ import annotations

from ftguard.metrics.aggregate import MetricValue, aggregate
from ftguard.metrics.base import Metric
from ftguard.metrics.bleu_chrf import bleu_signature, chrf_signature
from ftguard.metrics.registry import (
    METRICS,
    expand_metric_names,
    get_metric,
    metric_names_for,
)
from ftguard.metrics.score import (
    SampleScores,
    score_choice,
    score_classify,
    score_generate,
    score_perplexity,
)

__all__ = [
    "METRICS",
    "Metric",
    "MetricValue",
    "SampleScores",
    "aggregate",
    "bleu_signature",
    "chrf_signature",
    "expand_metric_names",
    "get_metric",
    "metric_names_for",
    "score_choice",
    "score_classify",
    "score_generate",
    "score_perplexity",
]
