"""The metric registry: every metric ftguard computes, by name.

Names follow lm-eval, sacrebleu and rouge-score. ``precision`` and ``recall`` are
parametrised by a label (``precision[termination]``); a bare ``precision`` in a task's
metric list stands for one entry per label (see :func:`expand_metric_names`).
"""

from __future__ import annotations

import dataclasses
import re

from ftguard.metrics import bleu_chrf, classification, perplexity
from ftguard.metrics.base import Metric

_GEN, _CHOICE, _CLS, _PPL = ("generate",), ("choice",), ("classify",), ("perplexity",)


def _mean(name: str, kinds: tuple[str, ...], description: str, *, binary: bool) -> Metric:
    return Metric(name, True, kinds, "mean", binary, description, bounds=(0.0, 1.0))


_DEFINITIONS: tuple[Metric, ...] = (
    _mean("exact_match", _GEN, "SQuAD v1.1 normalised exact match, max over references",
          binary=True),
    _mean("exact_match_strict", _GEN, "prediction equals a reference after strip()",
          binary=True),
    _mean("f1", _GEN, "SQuAD v1.1 token F1, max over references", binary=False),
    _mean("rouge1", _GEN, "ROUGE-1 F-measure (rouge-score, stemmer), max over references",
          binary=False),
    _mean("rouge2", _GEN, "ROUGE-2 F-measure (rouge-score, stemmer), max over references",
          binary=False),
    _mean("rougeL", _GEN, "ROUGE-L F-measure (rouge-score, stemmer), max over references",
          binary=False),
    _mean("rougeLsum", _GEN, "summary-level ROUGE-L F-measure, sentences split on newlines",
          binary=False),
    _mean("json_valid", _GEN, "the answer is a JSON object and nothing else (code fence allowed)",
          binary=True),
    _mean("json_field_match", _GEN, "share of the expected JSON fields the answer has exactly",
          binary=False),
    Metric("bleu", True, _GEN, "corpus", False,
           "sacrebleu corpus BLEU (13a, exp smoothing), 0-100", bleu_chrf.bleu_from_stats),
    Metric("chrf", True, _GEN, "corpus", False,
           "sacrebleu corpus chrF (char order 6, beta 2), 0-100", bleu_chrf.chrf_from_stats),
    _mean("acc", _CHOICE, "argmax of summed continuation log-likelihood is the gold choice",
          binary=True),
    _mean("acc_norm", _CHOICE, "as acc, log-likelihood divided by the choice's length in "
          "characters (lm-eval)", binary=True),
    _mean("accuracy", _CLS, "most likely label is the gold label", binary=True),
    Metric("macro_f1", True, _CLS, "corpus", False,
           "unweighted mean F1 over labels seen in gold or predictions",
           classification.macro_f1_from_stats),
    Metric("precision", True, _CLS, "corpus", False,
           "precision of one label (precision[LABEL]); 0 if never predicted",
           classification.precision_from_stats),
    Metric("recall", True, _CLS, "corpus", False,
           "recall of one label (recall[LABEL]); 0 if never gold",
           classification.recall_from_stats),
    Metric("perplexity", False, _PPL, "corpus", False,
           "token perplexity exp(sum NLL / sum tokens)", perplexity.perplexity_from_stats),
    Metric("word_perplexity", False, _PPL, "corpus", False,
           "exp(sum NLL / sum words), words as lm-eval counts them",
           perplexity.word_perplexity_from_stats),
    Metric("bits_per_byte", False, _PPL, "corpus", False,
           "sum NLL / sum UTF-8 bytes / ln 2", perplexity.bits_per_byte_from_stats),
)

METRICS: dict[str, Metric] = {m.name: m for m in _DEFINITIONS}
"""Every metric by base name."""

PARAMETRISED: frozenset[str] = frozenset({"precision", "recall"})
"""Base names that take a label argument: ``precision[LABEL]``."""

KINDS: tuple[str, ...] = ("generate", "choice", "classify", "perplexity")

_PARAMETRISED_NAME = re.compile(r"(\w+)\[(.+)\]", re.DOTALL)


def split_name(name: str) -> tuple[str, str | None]:
    """``"precision[yes]"`` -> ``("precision", "yes")``; ``"f1"`` -> ``("f1", None)``."""
    match = _PARAMETRISED_NAME.fullmatch(name)
    return (match.group(1), match.group(2)) if match else (name, None)


def get_metric(name: str) -> Metric:
    """The metric called ``name``; raises ``KeyError`` naming the known metrics."""
    if name in METRICS:
        return METRICS[name]
    base, arg = split_name(name)
    if arg is not None and base in PARAMETRISED:
        return dataclasses.replace(METRICS[base], name=name)
    raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")


def metric_names_for(kind: str) -> list[str]:
    """Base names of the metrics that apply to a task kind, in registry order."""
    if kind not in KINDS:
        raise KeyError(f"unknown task kind {kind!r}; known: {', '.join(KINDS)}")
    return [m.name for m in _DEFINITIONS if kind in m.kinds]


def expand_metric_names(kind: str, metrics: list[str], labels: list[str] | None) -> list[str]:
    """Validate a task's metric list and expand bare ``precision``/``recall`` to one name per
    label. Unknown names raise ``KeyError``; a metric for another kind, or an unknown or
    missing label, raises ``ValueError``. Duplicates are dropped, order is kept."""
    valid = metric_names_for(kind)
    out: list[str] = []
    for name in metrics:
        base, arg = split_name(get_metric(name).name)
        if base not in valid:
            raise ValueError(f"metric {name!r} does not apply to {kind} tasks; "
                             f"use one of: {', '.join(valid)}")
        if base in PARAMETRISED:
            if labels is None:
                raise ValueError(f"metric {name!r} needs the task's labels")
            if arg is not None and arg not in labels:
                raise ValueError(f"metric {name!r}: label {arg!r} is not one of {labels}")
            out.extend([name] if arg is not None else [f"{base}[{lab}]" for lab in labels])
        else:
            out.append(name)
    return list(dict.fromkeys(out))
