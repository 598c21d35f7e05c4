"""Per-sample scoring for each task kind: pure functions from model outputs to scores.

Each returns ``(scores, stats)``: ``scores`` maps mean metrics to this sample's value
(and, for display only, some corpus metrics to a per-sample value); ``stats`` maps corpus
metrics to this sample's sufficient statistics, which :func:`ftguard.metrics.aggregate`
sums. Metrics with a batch hook (user metrics, evaluate modules, BERTScore) are left out:
:mod:`ftguard.metrics.batch` scores them over the whole task.
"""

from __future__ import annotations

import math

from ftguard.metrics import bleu_chrf, classification, json_format, perplexity, qa, refusal
from ftguard.metrics.calibration import brier_score, choice_probabilities, top_label
from ftguard.metrics.choice import predict_choice
from ftguard.metrics.instruction_following import (
    INSTRUCTION_METRICS,
    Followed,
    score_followed,
    uses_instructions,
)
from ftguard.metrics.registry import expand_metric_names, get_metric, split_name
from ftguard.metrics.rouge import ROUGE_TYPES, rouge_fmeasures

SampleScores = tuple[dict[str, float], dict[str, list[float]]]
"""(scores, stats) of one sample."""


def score_generate(prediction: str, references: list[str], metrics: list[str],
                   followed: Followed | None = None) -> SampleScores:
    """Score a generated answer against one or more references; the instruction-following
    metrics read ``followed`` instead (:func:`ftguard.metrics.instruction_following.followed`
    of the item's instructions). ``refusal_margin`` and ``compliance_margin`` are not
    scored from the text: the engine adds them (:mod:`ftguard.metrics.refusal_margin`)."""
    names = _own("generate", metrics, None)
    scores: dict[str, float] = {}
    stats: dict[str, list[float]] = {}
    if uses_instructions(names):
        if followed is None:
            raise ValueError("instruction-following metrics need the item's instructions")
        scores, stats = score_followed(followed, names)
        names = [n for n in names if n not in INSTRUCTION_METRICS]
    if not references and not all(get_metric(n).reference_free for n in names):
        raise ValueError("a generate sample needs at least one reference")
    rouge = tuple(n for n in names if n in ROUGE_TYPES)
    if rouge:
        scores.update(rouge_fmeasures(prediction, references, rouge))
    for name in names:
        if name == "exact_match":
            scores[name] = qa.exact_match(prediction, references)
        elif name == "exact_match_strict":
            scores[name] = qa.exact_match_strict(prediction, references)
        elif name == "f1":
            scores[name] = qa.f1(prediction, references)
        elif name == "json_valid":
            scores[name] = json_format.json_valid(prediction)
        elif name == "json_field_match":
            scores[name] = json_format.json_field_match(prediction, references)
        elif name in ("refusal_rate", "over_refusal_rate"):
            scores[name] = refusal.refusal_score(prediction)
        elif name == "bleu":
            stats[name] = bleu_chrf.bleu_stats(prediction, references)
        elif name == "chrf":
            stats[name] = bleu_chrf.chrf_stats(prediction, references)
    return scores, stats


def score_choice(loglikelihoods: list[float], choices: list[str], gold: int,
                 metrics: list[str]) -> SampleScores:
    """Score a multiple-choice sample from the log-likelihood of each choice."""
    _check_gold(gold, len(choices))
    scores: dict[str, float] = {}
    stats: dict[str, list[float]] = {}
    for name in _own("choice", metrics, None):
        if name in ("brier", "ece"):
            _calibration(name, loglikelihoods, gold, scores, stats)
            continue
        pred = predict_choice(loglikelihoods, choices, normalize=name == "acc_norm")
        scores[name] = float(pred == gold)
    return scores, stats


def score_classify(loglikelihoods: list[float], labels: list[str], gold: int,
                   metrics: list[str]) -> SampleScores:
    """Score a classification sample from the log-likelihood of each label.

    A bare ``precision`` / ``recall`` yields one entry per label (``precision[LABEL]``)."""
    if len(loglikelihoods) != len(labels):
        raise ValueError(f"{len(loglikelihoods)} log-likelihoods for {len(labels)} labels")
    _check_gold(gold, len(labels))
    pred = classification.predict_label(loglikelihoods)
    scores: dict[str, float] = {}
    stats: dict[str, list[float]] = {}
    for name in _own("classify", metrics, labels):
        _, label = split_name(name)
        if name == "accuracy":
            scores[name] = float(pred == gold)
        elif name in ("brier", "ece"):
            _calibration(name, loglikelihoods, gold, scores, stats)
        elif name == "macro_f1":
            stats[name] = classification.macro_f1_stats(pred, gold, len(labels))
        elif label is not None:
            stats[name] = classification.label_stats(pred, gold, labels.index(label))
    return scores, stats


def score_perplexity(nll: float, n_tokens: int, text: str, metrics: list[str]) -> SampleScores:
    """Score one document from its summed token NLL (nats) and token count.

    ``stats`` holds ``[nll, n_tokens, n_words, n_bytes]`` per metric; ``scores`` holds the
    document's own value of each metric, for display."""
    vector = perplexity.perplexity_stats(nll, n_tokens, text)
    nll_, tokens, words, n_bytes = vector
    per_doc = {
        "perplexity": _exp(nll_ / tokens),
        "word_perplexity": _exp(nll_ / words),
        "bits_per_byte": nll_ / n_bytes / math.log(2),
    }
    names = expand_metric_names("perplexity", metrics, None)
    return {n: per_doc[n] for n in names}, {n: list(vector) for n in names}


def _own(kind: str, metrics: list[str], labels: list[str] | None) -> list[str]:
    """The task's metric names scored here, one sample at a time (not by a batch hook)."""
    return [n for n in expand_metric_names(kind, metrics, labels) if get_metric(n).batch is None]


def _calibration(name: str, loglikelihoods: list[float], gold: int, scores: dict[str, float],
                 stats: dict[str, list[float]]) -> None:
    """``brier`` (a per-sample score) or ``ece``'s row ``[confidence, correct]``."""
    probabilities = choice_probabilities(loglikelihoods)
    if name == "brier":
        scores[name] = brier_score(probabilities, gold)
    else:
        stats[name] = list(top_label(probabilities, gold))


def _exp(x: float) -> float:
    return math.exp(x) if x < 709.0 else math.inf


def _check_gold(gold: int, n: int) -> None:
    if not 0 <= gold < n:
        raise ValueError(f"gold index {gold} is out of range for {n} options")
