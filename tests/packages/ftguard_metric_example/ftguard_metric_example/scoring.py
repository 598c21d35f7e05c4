"""Metrics a team might write: a domain check per item and a corpus-level token F1."""

from __future__ import annotations

import re

import ftguard

_CITED = re.compile(r"§\s*(\d+)")


@ftguard.metric(higher_is_better=True, binary=True)
def citation_ok(prediction: str, item: dict) -> float:
    """Every statute the answer cites (§ N) is one of the item's known statutes."""
    cited = _CITED.findall(prediction)
    return float(bool(cited) and all(c in item["statutes"] for c in cited))


def _f1(stats) -> float:  # summed [overlap, predicted tokens, reference tokens]
    overlap, predicted, reference = (float(x) for x in stats)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / predicted, overlap / reference
    return 2 * precision * recall / (precision + recall)


@ftguard.metric(higher_is_better=True, corpus=_f1, bounds=(0.0, 1.0))
def token_f1_corpus(prediction: str, references: list[str]) -> list[float]:
    """Micro-averaged token F1 over the whole task (not a mean of per-item F1)."""
    predicted, reference = prediction.lower().split(), references[0].lower().split()
    overlap = sum(min(predicted.count(t), reference.count(t)) for t in set(predicted))
    return [overlap, len(predicted), len(reference)]


@ftguard.metric(higher_is_better=True)
def fails_on_s3(prediction: str, id: str) -> float:
    """Raises on item s3 (the error path of a user metric)."""
    if id == "s3":
        return len(prediction) / 0
    return 1.0


@ftguard.metric(higher_is_better=True)
def scaled(prediction: str, factor: float = 1.0) -> float:
    """len(prediction) * factor: ``factor`` comes from the task's metric_args."""
    return len(prediction) * factor


def not_declared(prediction: str) -> float:
    """A plain function: not a metric until decorated."""
    return 1.0


@ftguard.metric(higher_is_better=True, binary=True, kinds=("choice", "classify"))
def chose_first(prediction: str, references: list[str], item: dict) -> float:
    """The chosen option is the item's first one (a choice task's user metric)."""
    return float(prediction == item["choices"][0])
